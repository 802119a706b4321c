"""Tracking-plan enforcement: what the plan in force makes of each event (docs/tracking-plans.md).

A pure step beside validation: the ingest service hands each valid row here
with its properties; the plan's verdict (:mod:`eventwire.ingest.plan`) sorts it
into the rows to store (accepted, its violations recorded on the row), the
quarantine (stored apart, with its violations) or the rejections (never
stored, reported by field path). Nothing here does I/O; the counts go to
:class:`~eventwire.observability.plan_metrics.PlanStats`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import orjson

from eventwire._errors import FieldViolation
from eventwire.api import analytics_pb2
from eventwire.ingest.plan import ACCEPTED, CompiledPlan, PlanSpec, Verdict, Violation
from eventwire.ingest.rows import fast_rows, rows_one_by_one
from eventwire.ingest.validation import Limits, latest_timestamp_ms
from eventwire.observability.plan_metrics import PlanStats
from eventwire.store.base import AlertRow, EventRow, EventValues
from eventwire.store.quarantine import QuarantineRow

_ALERT_KEYS: Final = uuid.UUID("6f1c1a2e-4b7d-5c3e-9a8f-2d4e6b8c0a1f")
"""The namespace of quarantined alerts' tracking ids derived from their idempotency keys."""

OUTCOMES: Final = {
    "accept": analytics_pb2.OUTCOME_ACCEPTED,
    "quarantine": analytics_pb2.OUTCOME_QUARANTINED,
    "reject": analytics_pb2.OUTCOME_REJECTED,
}


@dataclass(frozen=True, slots=True)
class ActivePlan:
    """A stored plan version, compiled: what every event is checked against."""

    version: int
    spec: PlanSpec
    compiled: CompiledPlan
    applied_at: int
    applied_by: str
    stats: PlanStats | None = None
    """Where the verdicts on this version are counted (the server's metrics)."""


@dataclass(frozen=True, slots=True)
class Flagged:
    """An event the plan found violations in, accepted or quarantined."""

    index: int
    event_id: str
    outcome: str
    violations: tuple[Violation, ...]


@dataclass(slots=True)
class Sorted:
    """The events of one request, sorted by the plan (module docstring)."""

    plan: ActivePlan
    now: int
    rows: list[EventValues] = field(default_factory=list)
    quarantined: list[QuarantineRow] = field(default_factory=list)
    flagged: list[Flagged] = field(default_factory=list)
    rejected: list[tuple[int, list[FieldViolation]]] = field(default_factory=list)
    conforming: dict[str, int] = field(default_factory=dict)
    """Events that conform, by name, not yet counted in the metrics (see :meth:`count`)."""

    def add(self, row: EventRow, properties: dict[str, str], index: int, prefix: str) -> str:
        """Sort ``row`` (built with the plan's version); its outcome. Violation paths
        start with ``prefix``: as it is when it ends with a dot (``stream[3].``) or
        is empty, else as a batch's (``events`` → ``events[3].``)."""
        name = row.event_name
        verdict = self.plan.compiled.check_event(name, properties, row.user_id)
        if verdict is ACCEPTED:
            # The common case costs a count here; the metrics get them once a request.
            self.rows.append(row)
            conforming = self.conforming
            conforming[name] = conforming.get(name, 0) + 1
            return "accept"
        return self.judged(row, verdict, index, prefix)

    def judged(self, row: EventRow, verdict: Verdict, index: int, prefix: str) -> str:
        """:meth:`add` once the plan has judged ``row`` (a batch checks inline)."""
        plan = self.plan
        name = row.event_name
        if plan.stats is not None:
            plan.stats.checked(plan.version, name, verdict)
        if not verdict.violations and verdict.outcome == "accept":
            self.rows.append(row)
            return "accept"
        if verdict.outcome == "reject":
            path = f"{prefix}[{index}]." if prefix and not prefix.endswith(".") else prefix
            self.rejected.append((index, field_violations(verdict.violations, path)))
            return "reject"
        self.flagged.append(Flagged(index, row.event_id, verdict.outcome, verdict.violations))
        encoded = violations_json(verdict.violations)
        if verdict.outcome == "quarantine":
            self.quarantined.append(quarantine_event(row, encoded, plan.version, self.now))
        else:
            self.rows.append(row._replace(violations=encoded))
        return verdict.outcome

    def count(self) -> None:
        """Hand the conforming events' counts to the metrics (once per request)."""
        stats = self.plan.stats
        if stats is not None and self.conforming:
            stats.conformed(self.plan.version, self.conforming)
        self.conforming = {}


def field_violations(violations: Sequence[Violation], prefix: str = "") -> list[FieldViolation]:
    return [FieldViolation(prefix + v.field, f"{v.message} [{v.rule}]") for v in violations]


def violations_json(violations: Sequence[Violation]) -> str:
    encoded: bytes = orjson.dumps(
        [{"field": v.field, "rule": v.rule, "message": v.message} for v in violations]
    )
    return encoded.decode()


def violations_of(encoded: str) -> list[Violation]:
    return [Violation(v["field"], v["rule"], v["message"]) for v in orjson.loads(encoded)]


def quarantine_event(row: EventRow, violations: str, version: int, now: int) -> QuarantineRow:
    payload = orjson.dumps(list(row._replace(violations=None))).decode()
    return QuarantineRow(
        row.tenant, "event", row.event_id, row.event_name, payload, violations, version, now
    )


def quarantine_alert(row: AlertRow, violations: str, version: int, now: int) -> QuarantineRow:
    """``row`` put apart. With an idempotency key its tracking id is derived from
    the key, so a retried alert is the same quarantined row and gets the same
    tracking id back (an alert stored normally gets the first one's the same way)."""
    if row.idempotency_key:
        key = f"{row.tenant}\x00{row.idempotency_key}"
        row = row._replace(tracking_id=str(uuid.uuid5(_ALERT_KEYS, key)))
    payload = orjson.dumps(list(row)).decode()
    return QuarantineRow(
        row.tenant, "alert", row.tracking_id, row.alert_type, payload, violations, version, now
    )


def proto_violations(violations: Sequence[Violation]) -> list[analytics_pb2.FieldViolation]:
    return [
        analytics_pb2.FieldViolation(field=v.field, description=f"{v.message} [{v.rule}]")
        for v in violations
    ]


def flagged_message(flag: Flagged) -> analytics_pb2.PlannedEvent:
    return analytics_pb2.PlannedEvent(
        index=flag.index,
        event_id=flag.event_id,
        outcome=OUTCOMES[flag.outcome],
        violations=proto_violations(flag.violations),
    )


def judge_alert(plan: ActivePlan, alert: AlertRow, attributes: dict[str, str]) -> Verdict:
    verdict = plan.compiled.check_alert(alert.alert_type, attributes)
    if plan.stats is not None:
        plan.stats.checked(plan.version, alert.alert_type, verdict)
    return verdict


def sort_batch(
    sorted_: Sorted,
    reqs: Sequence[analytics_pb2.TrackEventRequest],
    tenant: str,
    limits: Limits,
    prefix: str,
) -> list[tuple[int, list[FieldViolation]]]:
    """Validate a batch's events and sort the valid ones into ``sorted_``; the
    invalid ones by position, with their violations (``{prefix}[{index}].{field}``).

    :meth:`Sorted.add` inlined for the common case, a conforming event: a call
    and some lookups less per event. A batch of valid events is read and checked
    by :func:`fast_rows`, whose properties maps the plan checks too (read once).
    """
    received = sorted_.now
    latest = latest_timestamp_ms(received, limits.max_future_ms)
    version = sorted_.plan.version
    maps: list[dict[str, str]] = []
    rows = fast_rows(reqs, tenant, received, limits, latest, plan_version=version, maps=maps)
    positions: Sequence[int] = range(len(reqs))
    invalid: list[tuple[int, list[FieldViolation]]] = []
    if rows is None:  # a doubtful event: each one on its own
        maps.clear()
        rows, positions, invalid = rows_one_by_one(
            reqs, tenant, received, limits, latest, prefix=prefix, plan_version=version, maps=maps
        )
    check = sorted_.plan.compiled.check_event
    keep = sorted_.rows.append
    conforming = sorted_.conforming
    for index, row, props in zip(positions, rows, maps, strict=True):
        name = row[2]  # a plain tuple's event_name (EventValues)
        verdict = check(name, props, row[3])
        if verdict is ACCEPTED:
            keep(row)
            conforming[name] = conforming.get(name, 0) + 1
        else:
            sorted_.judged(EventRow(*row), verdict, index, prefix)
    return invalid
