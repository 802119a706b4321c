"""The plan as data: what a parsed, valid tracking plan holds.

Frozen values with no behaviour beyond describing themselves; :mod:`.parse`
builds them (and is the only place that decides what a valid plan is),
:mod:`.check` compiles them into validators, :mod:`.codegen` writes typed
tracking functions from them, :mod:`.diff` compares two of them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

__all__ = [
    "FORMAT_VERSION",
    "POLICIES",
    "WIRE_TYPES",
    "AlertSpec",
    "EventSpec",
    "Outcome",
    "PlanError",
    "PlanSpec",
    "Policies",
    "PropertySpec",
    "WireType",
]

Outcome = Literal["accept", "quarantine", "reject"]
"""What happens to an event: stored (violations recorded on the row), stored apart
until replayed, or refused with ``INVALID_ARGUMENT``."""
POLICIES: Final[tuple[Outcome, ...]] = ("accept", "quarantine", "reject")

WireType = Literal["string", "integer", "number", "boolean"]
"""The JSON Schema ``type`` a property's wire string is decoded as before validation."""
WIRE_TYPES: Final[tuple[WireType, ...]] = ("string", "integer", "number", "boolean")

FORMAT_VERSION: Final = 1
"""The plan file format this code reads (the document's ``format`` key)."""

JsonObject = Mapping[str, Any]


class PlanError(ValueError):
    """A plan document that is not a valid plan: ``pointer`` (RFC 6901) says where."""

    def __init__(self, pointer: str, reason: str, *, source: str = "<plan>") -> None:
        self.pointer = pointer
        self.reason = reason
        self.source = source
        super().__init__(f"{source}: {pointer or '/'}: {reason}")


@dataclass(frozen=True, slots=True)
class Policies:
    unplanned: Outcome = "accept"
    """For a name the plan does not declare."""
    violations: Outcome = "accept"
    """For a declared name whose content breaks its schema."""


@dataclass(frozen=True, slots=True)
class PropertySpec:
    """One declared key of a ``properties`` (or ``attributes``) map."""

    key: str
    type: WireType
    required: bool
    schema: JsonObject
    """The property's own JSON Schema, as written."""

    @property
    def enum(self) -> tuple[Any, ...] | None:
        if "const" in self.schema:
            return (self.schema["const"],)
        values = self.schema.get("enum")
        return tuple(values) if values is not None else None

    @property
    def format(self) -> str | None:
        value = self.schema.get("format")
        return value if isinstance(value, str) else None

    @property
    def description(self) -> str:
        value = self.schema.get("description", "")
        return value if isinstance(value, str) else ""


@dataclass(frozen=True, slots=True)
class EventSpec:
    name: str
    properties: JsonObject
    """The JSON Schema (draft 2020-12) of the ``properties`` map, as written."""
    fields: tuple[PropertySpec, ...]
    """The declared keys of ``properties``, in the order the plan lists them."""
    additional: bool
    """Whether keys the schema does not declare are allowed."""
    user_id: JsonObject | None = None
    """A JSON Schema for the ``user_id`` string, or None for no rule."""
    violations: Outcome | None = None
    """This event's override of the plan's violations policy."""
    description: str = ""


@dataclass(frozen=True, slots=True)
class AlertSpec:
    name: str
    attributes: JsonObject
    """The JSON Schema of the ``attributes`` map, as written."""
    fields: tuple[PropertySpec, ...]
    additional: bool
    violations: Outcome | None = None
    description: str = ""


@dataclass(frozen=True)
class PlanSpec:
    """A valid tracking plan. Build it with :func:`~eventwire.ingest.plan.parse_plan`."""

    name: str
    policies: Policies
    events: Mapping[str, EventSpec]
    alerts: Mapping[str, AlertSpec] | None
    """None when the plan does not govern alerts (every alert is accepted as today)."""
    description: str = ""
    document: JsonObject = field(default_factory=dict, compare=False, repr=False)
    """The normalised document (defaults filled in) :meth:`canonical_json` encodes."""

    def canonical_json(self) -> bytes:
        """Stable bytes of the plan: sorted keys, no spaces, UTF-8, defaults filled in.

        Two documents that say the same thing (YAML or JSON, any key order, a
        default written out or left implicit) give the same bytes, so these are
        what to store, hash and compare versions by.
        """
        return json.dumps(
            self.document, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()

    def policy_for_violations(self, event_name: str) -> Outcome:
        spec = self.events.get(event_name)
        if spec is not None and spec.violations is not None:
            return spec.violations
        return self.policies.violations
