"""The tracking plan's records in the store: applied plan versions and the quarantine
(docs/tracking-plans.md). Kept apart from :mod:`eventwire.store.base` so that module
stays the map of the boundary; :class:`~eventwire.store.base.Store` names these."""

from __future__ import annotations

from typing import Literal, NamedTuple

QuarantineKind = Literal["event", "alert"]


class QuarantineRow(NamedTuple):
    """An event or alert the tracking plan put apart, in the column order of
    ``eventwire_quarantine`` (docs/tracking-plans.md)."""

    tenant: str
    kind: QuarantineKind
    key: str
    """The event id, or the alert's tracking id."""
    name: str
    """The event name, or the alert type."""
    row: str
    """The whole :class:`EventRow` or :class:`AlertRow`, a JSON array."""
    violations: str
    """A JSON array of ``{"field", "rule", "message"}`` objects."""
    plan_version: int
    quarantined_at: int
    """Unix epoch milliseconds."""


class StoredQuarantine(NamedTuple):
    seq: int
    row: QuarantineRow


class QuarantineFilter(NamedTuple):
    """Which quarantined rows an operation concerns; empty strings and zeros match all."""

    tenant: str
    name: str = ""
    rule: str = ""
    """Rows with at least one violation of this rule."""
    kind: str = ""
    """``event``, ``alert``, or empty for both."""
    since: int = 0
    """Inclusive lower bound on ``quarantined_at`` (ms)."""
    until: int = 0
    """Exclusive upper bound on ``quarantined_at`` (ms)."""


class QuarantineGroup(NamedTuple):
    kind: QuarantineKind
    name: str
    rule: str
    rows: int
    """Matching rows with at least one violation of ``rule``."""


class PlanRecord(NamedTuple):
    """One applied version of the tracking plan."""

    version: int
    document: str
    """Canonical JSON."""
    applied_at: int
    applied_by: str
