"""Checking one event (or alert) against a compiled plan: a pure function to a :class:`Verdict`.

Built for the batch path: :func:`compile_plan` builds every validator once;
:meth:`CompiledPlan.check_event` decodes the few non-string properties
(:mod:`.wire`), asks the library one ``is_valid`` question and returns the
shared :data:`ACCEPTED` when the answer is yes. Only an event that breaks its
schema pays for walking the errors, and that walk is capped
(:data:`MAX_VIOLATIONS`). Messages are written here, not taken from the
library, so they stay short whatever a value or an ``enum`` holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import jsonschema_rs

from eventwire.ingest.plan.engine import build_validator
from eventwire.ingest.plan.model import Outcome, PlanSpec, PropertySpec, WireType
from eventwire.ingest.plan.wire import DECODERS, UNDECODABLE, describe_type

__all__ = [
    "ACCEPTED",
    "MAX_VIOLATIONS",
    "RULES",
    "CompiledPlan",
    "Verdict",
    "Violation",
    "compile_plan",
]

MAX_VIOLATIONS: Final = 20
"""Violations reported per event, as ingest validation caps its own."""
MAX_MESSAGE_CHARS: Final = 200

RULES: Final = frozenset(
    {
        "unplanned",
        "required",
        "type",
        "enum",
        "const",
        "pattern",
        "min_length",
        "max_length",
        "minimum",
        "maximum",
        "multiple_of",
        "format",
        "additional",
        "min_properties",
        "max_properties",
        "schema",
    }
)
"""Every value :attr:`Violation.rule` takes: a bounded label set for metrics."""


@dataclass(frozen=True, slots=True)
class Violation:
    field: str
    """Where: ``event_name``, ``user_id``, ``properties.plan``, ``attributes.zone``."""
    rule: str
    """Which kind of rule was broken, one of :data:`RULES`."""
    message: str
    """For a person, at most :data:`MAX_MESSAGE_CHARS` characters."""


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    violations: tuple[Violation, ...]
    planned: bool
    """Whether the plan declares the event name (alert type)."""


ACCEPTED: Final = Verdict("accept", (), True)
"""A planned name whose content conforms: the one shared instance (compare with ``is``)."""
NOT_GOVERNED: Final = Verdict("accept", (), False)
"""An alert when the plan has no ``alerts`` section: alerts are not checked at all."""

_RULE_OF_KIND: Final[Mapping[str, str]] = {
    "Required": "required",
    "Type": "type",
    "Enum": "enum",
    "Constant": "const",
    "Pattern": "pattern",
    "MinLength": "min_length",
    "MaxLength": "max_length",
    "Minimum": "minimum",
    "ExclusiveMinimum": "minimum",
    "Maximum": "maximum",
    "ExclusiveMaximum": "maximum",
    "MultipleOf": "multiple_of",
    "Format": "format",
    "AdditionalProperties": "additional",
    "FalseSchema": "additional",
    "MinProperties": "min_properties",
    "MaxProperties": "max_properties",
}


def _shown(value: object) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return repr(text if len(text) <= 40 else text[:40] + "...")


def _violation(field: str, rule: str, message: str) -> Violation:
    return Violation(field, rule, message[:MAX_MESSAGE_CHARS])


def _message(kind: jsonschema_rs.ValidationErrorKind, rule: str, value: object) -> str:  # noqa: PLR0911
    k = jsonschema_rs.ValidationErrorKind
    got = f"got {_shown(value)}"
    if isinstance(kind, k.Enum):
        options = ", ".join(_shown(o) for o in kind.options[:10])
        more = f" (and {len(kind.options) - 10} more)" if len(kind.options) > 10 else ""
        return f"must be one of {options}{more}; {got}"
    if isinstance(kind, k.Constant):
        return f"must be {_shown(kind.expected_value)}; {got}"
    if isinstance(kind, k.Pattern):
        return f"must match the pattern {_shown(kind.pattern)}; {got}"
    if isinstance(kind, (k.MinLength, k.MaxLength)):
        most = "least" if rule == "min_length" else "most"
        return f"must be at {most} {kind.limit} characters; got {len(str(value))}"
    if isinstance(kind, (k.Minimum, k.ExclusiveMinimum, k.Maximum, k.ExclusiveMaximum)):
        word = {
            "Minimum": ">=",
            "ExclusiveMinimum": ">",
            "Maximum": "<=",
            "ExclusiveMaximum": "<",
        }[type(kind).__name__]
        return f"must be {word} {kind.limit}; {got}"
    if isinstance(kind, k.MultipleOf):
        return f"must be a multiple of {kind.multiple_of}; {got}"
    if isinstance(kind, k.Format):
        return f"must be a valid {kind.format}; {got}"
    if isinstance(kind, (k.MinProperties, k.MaxProperties)):
        most = "least" if rule == "min_properties" else "most"
        return f"must have at {most} {kind.limit} entries"
    return f"breaks the plan's {kind.name!r} rule; {got}"


def _as_wire_strings(schema: Mapping[str, Any], fields: tuple[PropertySpec, ...]) -> dict[str, Any]:
    """``schema`` with each boolean property restated over its wire strings.

    ``true``/``false`` are exactly two strings, so the library can check them
    as an ``enum`` of strings without a decoding step in Python (which costs
    more than the whole validation); the meaning is unchanged.
    """
    declared = dict(schema.get("properties", {}))
    for f in fields:
        if f.type == "boolean":
            sub = {k: v for k, v in f.schema.items() if k not in ("type", "enum", "const")}
            allowed = f.enum if f.enum is not None else (True, False)
            declared[f.key] = {**sub, "enum": ["true" if v else "false" for v in allowed]}
    return {**schema, "properties": declared} if declared else dict(schema)


class _Schema:
    """One compiled map schema (an event's properties or an alert's attributes)."""

    __slots__ = ("booleans", "decoders", "prefix", "types", "validator")

    def __init__(self, schema: Mapping[str, Any], fields: tuple[PropertySpec, ...], prefix: str):
        self.validator = build_validator(_as_wire_strings(schema, fields))
        self.prefix = prefix
        self.types: dict[str, WireType] = {f.key: f.type for f in fields}
        self.booleans = frozenset(f.key for f in fields if f.type == "boolean")
        self.decoders = tuple(
            (f.key, DECODERS[f.type]) for f in fields if f.type in ("integer", "number")
        )

    def check(self, values: Mapping[str, str]) -> list[Violation]:
        """Every violation of ``values`` (at most :data:`MAX_VIOLATIONS`); empty if none."""
        instance: dict[str, Any] = dict(values)
        bad: list[Violation] | None = None
        for key, decode in self.decoders:
            text = instance.get(key)
            if text is None:
                continue
            value = decode(text)
            if value is UNDECODABLE:
                if bad is None:
                    bad = []
                bad.append(self._type_violation(key, text))
                del instance[key]  # reported; the schema checks what remains
            else:
                instance[key] = value
        if bad is None:
            if self.validator.is_valid(instance):
                return []
            bad = []
        return self._errors(instance, values, bad)

    def _type_violation(self, key: str, text: str) -> Violation:
        return _violation(
            f"{self.prefix}.{key}",
            "type",
            f"must be {describe_type(self.types[key])}; got {_shown(text)}",
        )

    def _errors(
        self, instance: dict[str, Any], values: Mapping[str, str], out: list[Violation]
    ) -> list[Violation]:
        for error in self.validator.iter_errors(instance):
            if len(out) >= MAX_VIOLATIONS:
                break
            kind = error.kind
            rule = _RULE_OF_KIND.get(type(kind).__name__, "schema")
            if isinstance(kind, jsonschema_rs.ValidationErrorKind.Required):
                if kind.property in values:  # present but undecodable: already a "type" one
                    continue
                out.append(_violation(f"{self.prefix}.{kind.property}", rule, "is required"))
            elif isinstance(kind, jsonschema_rs.ValidationErrorKind.AdditionalProperties):
                out.extend(
                    _violation(f"{self.prefix}.{key}", rule, "is not declared by the plan")
                    for key in kind.unexpected[: MAX_VIOLATIONS - len(out)]
                )
            else:
                path = error.instance_path
                key = str(path[0]) if path else ""
                value = values.get(key, "")
                if key in self.booleans and value not in ("true", "false"):
                    out.append(self._type_violation(key, value))
                    continue
                field = f"{self.prefix}.{key}" if path else self.prefix
                out.append(_violation(field, rule, _message(kind, rule, value)))
        if not out:  # the library said invalid but listed nothing: never accept silently
            out.append(_violation(self.prefix, "schema", "does not conform to the plan"))
        return out


class _UserId:
    __slots__ = ("required", "validator")

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.validator = build_validator({**schema, "type": "string"})
        self.required = int(schema.get("minLength", 0)) > 0

    def check(self, user_id: str) -> Violation | None:
        if self.validator.is_valid(user_id):
            return None
        if not user_id and self.required:
            return _violation("user_id", "required", "is required")
        for error in self.validator.iter_errors(user_id):
            rule = _RULE_OF_KIND.get(type(error.kind).__name__, "schema")
            return _violation("user_id", rule, _message(error.kind, rule, user_id))
        return _violation("user_id", "schema", "does not conform to the plan")


@dataclass(frozen=True, slots=True)
class _Rules:
    schema: _Schema
    user_id: _UserId | None
    policy: Outcome


class CompiledPlan:
    """A plan ready to check events and alerts; build it with :func:`compile_plan`.

    Immutable after construction and free of I/O, so one instance can be
    shared by every request and thread.
    """

    __slots__ = ("_alerts", "_events", "_unplanned_alert", "_unplanned_event", "spec")

    def __init__(self, spec: PlanSpec) -> None:
        self.spec = spec
        policies = spec.policies
        self._events = {
            name: _Rules(
                _Schema(e.properties, e.fields, "properties"),
                _UserId(e.user_id) if e.user_id is not None else None,
                e.violations or policies.violations,
            )
            for name, e in spec.events.items()
        }
        self._alerts = (
            None
            if spec.alerts is None
            else {
                name: _Rules(
                    _Schema(a.attributes, a.fields, "attributes"),
                    None,
                    a.violations or policies.violations,
                )
                for name, a in spec.alerts.items()
            }
        )
        self._unplanned_event = Verdict(
            policies.unplanned,
            (_violation("event_name", "unplanned", "is not declared by the tracking plan"),),
            False,
        )
        self._unplanned_alert = Verdict(
            policies.unplanned,
            (_violation("alert_type", "unplanned", "is not declared by the tracking plan"),),
            False,
        )

    def check_event(self, event_name: str, properties: Mapping[str, str], user_id: str) -> Verdict:
        rules = self._events.get(event_name)
        if rules is None:
            return self._unplanned_event
        violations = rules.schema.check(properties)
        if rules.user_id is not None and (bad := rules.user_id.check(user_id)) is not None:
            violations.insert(0, bad)
        if not violations:
            return ACCEPTED
        return Verdict(rules.policy, tuple(violations[:MAX_VIOLATIONS]), True)

    def check_alert(self, alert_type: str, attributes: Mapping[str, str]) -> Verdict:
        if self._alerts is None:
            return NOT_GOVERNED
        rules = self._alerts.get(alert_type)
        if rules is None:
            return self._unplanned_alert
        violations = rules.schema.check(attributes)
        if not violations:
            return ACCEPTED
        return Verdict(rules.policy, tuple(violations), True)


def compile_plan(spec: PlanSpec) -> CompiledPlan:
    """Every validator of ``spec``, built once (milliseconds for a plan of 50 events)."""
    return CompiledPlan(spec)
