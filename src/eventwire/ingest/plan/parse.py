"""``parse_plan``: a plan document checked and turned into a :class:`PlanSpec`.

This module is the definition of a valid plan. Everything it refuses is
refused with the JSON pointer of the problem (:class:`PlanError`), before any
event is checked against it: a mistake in a plan must not become a flood of
quarantined events. What it checks beyond the JSON Schema meta-schema:

* the document's shape (known keys only: a misspelt key is an error, not a no-op);
* each property schema uses the string-typing vocabulary (:mod:`.wire`): one
  ``type`` of string, integer, number or boolean, and only the keywords that
  apply to it (``minimum`` on a string would never be checked);
* ``enum``/``const`` values are of the declared type (YAML reads ``yes`` as a
  boolean: the error says to quote it);
* limits that keep checking cheap (:data:`MAX_EVENTS`, :data:`MAX_ENUM_VALUES`,
  :data:`MAX_PATTERN_CHARS`, and those of :mod:`.loading` and :mod:`.engine`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, cast

from eventwire.ingest.names import invisible_violation
from eventwire.ingest.plan.engine import SchemaProblem, build_validator
from eventwire.ingest.plan.loading import load_document, pointer
from eventwire.ingest.plan.model import (
    FORMAT_VERSION,
    POLICIES,
    WIRE_TYPES,
    AlertSpec,
    EventSpec,
    Outcome,
    PlanError,
    PlanSpec,
    Policies,
    PropertySpec,
    WireType,
)

__all__ = ["FORMATS", "MAX_ENUM_VALUES", "MAX_EVENTS", "MAX_PATTERN_CHARS", "parse_plan"]

MAX_EVENTS: Final = 2000
"""Event names (and, separately, alert types) one plan may declare."""
MAX_PROPERTIES: Final = 255
"""Declared keys per event: what ingest validation lets one event carry."""
MAX_ENUM_VALUES: Final = 1000
MAX_PATTERN_CHARS: Final = 1000
MAX_NAME_CHARS: Final = 256
MAX_ALERT_TYPE_CHARS: Final = 128
MAX_TEXT_CHARS: Final = 4096
"""Descriptions and titles."""

DRAFT: Final = "https://json-schema.org/draft/2020-12/schema"

FORMATS: Final = frozenset(
    {"date-time", "date", "time", "duration", "email", "hostname", "ipv4", "ipv6", "uri", "uuid"}
)
"""``format`` values a plan may use; each is asserted (an unknown one would be ignored)."""

_ANNOTATIONS: Final = frozenset({"description", "title", "$comment", "examples", "deprecated"})
_BY_TYPE: Final[Mapping[WireType, frozenset[str]]] = {
    "string": frozenset({"minLength", "maxLength", "pattern", "format"}),
    "integer": frozenset(
        {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"}
    ),
    "number": frozenset(
        {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"}
    ),
    "boolean": frozenset(),
}
_ANY_TYPE: Final = _ANNOTATIONS | {"type", "enum", "const"}
_PROPERTY_KEYWORDS: Final = _ANY_TYPE.union(*_BY_TYPE.values())
_OBJECT_KEYWORDS: Final = _ANNOTATIONS | {
    "$schema",
    "type",
    "properties",
    "required",
    "additionalProperties",
    "minProperties",
    "maxProperties",
    "dependentRequired",
}
_TOP_KEYS: Final = frozenset({"format", "name", "description", "policies", "events", "alerts"})
_EVENT_KEYS: Final = frozenset({"description", "policies", "user_id", "properties"})
_ALERT_KEYS: Final = frozenset({"description", "policies", "attributes"})


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: tuple[str | int, ...], reason: str) -> PlanError:
        return PlanError(pointer(*path), reason, source=self.source)

    def mapping(self, value: Any, path: tuple[str | int, ...], what: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(path, f"{what} must be a mapping, got {_kind(value)}")
        return cast("Mapping[str, Any]", value)

    def known_keys(
        self, value: Mapping[str, Any], allowed: frozenset[str], path: tuple[str | int, ...]
    ) -> None:
        for key in value:
            if key not in allowed:
                raise self.fail(
                    (*path, key), f"unknown key {key!r} (allowed: {', '.join(sorted(allowed))})"
                )

    def text(self, value: Any, path: tuple[str | int, ...]) -> str:
        if not isinstance(value, str) or len(value) > MAX_TEXT_CHARS:
            raise self.fail(path, f"must be a string of at most {MAX_TEXT_CHARS} characters")
        return value

    def name(self, value: str, path: tuple[str | int, ...], max_chars: int) -> None:
        if not value.strip():
            raise self.fail(path, "name must not be empty or blank")
        if len(value) > max_chars:
            raise self.fail(path, f"name must be at most {max_chars} characters")
        if found := invisible_violation(value, "name must"):
            raise self.fail(path, found)

    def policy(self, value: Any, path: tuple[str | int, ...]) -> Outcome:
        if value not in POLICIES:
            raise self.fail(path, f"must be one of {', '.join(POLICIES)}, got {value!r}")
        return cast("Outcome", value)

    def policies(self, value: Any, path: tuple[str | int, ...]) -> Policies:
        value = self.mapping(value, path, "policies")
        self.known_keys(value, frozenset({"unplanned", "violations"}), path)
        return Policies(
            unplanned=self.policy(value.get("unplanned", "accept"), (*path, "unplanned")),
            violations=self.policy(value.get("violations", "accept"), (*path, "violations")),
        )

    def override(self, value: Any, path: tuple[str | int, ...]) -> Outcome | None:
        value = self.mapping(value, path, "policies")
        if "unplanned" in value:
            raise self.fail(
                (*path, "unplanned"),
                "a declared name is never unplanned: set unplanned in the top-level policies",
            )
        self.known_keys(value, frozenset({"violations"}), path)
        return self.policy(value["violations"], (*path, "violations")) if value else None

    # -- schemas ---------------------------------------------------------------------------

    def compile(self, schema: Mapping[str, Any], path: tuple[str | int, ...]) -> None:
        try:
            build_validator(schema)
        except SchemaProblem as problem:
            raise self.fail((*path, *problem.path), problem.reason) from None

    def value_of(self, value: Any, wire_type: WireType) -> bool:
        if wire_type == "string":
            return isinstance(value, str)
        if wire_type == "boolean":
            return isinstance(value, bool)
        if isinstance(value, bool):
            return False
        return isinstance(value, int) or (wire_type == "number" and isinstance(value, float))

    def typed_value(self, value: Any, wire_type: WireType, path: tuple[str | int, ...]) -> None:
        if self.value_of(value, wire_type):
            return
        hint = ""
        if wire_type == "string" and isinstance(value, bool):
            hint = " (YAML reads yes/no/on/off/true/false as booleans: quote it)"
        elif wire_type == "string" and value is not None:
            hint = " (quote it)"
        raise self.fail(
            path, f"must be a {wire_type} like the property's type, got {_kind(value)}{hint}"
        )

    def property(
        self,
        key: str,
        schema: Any,
        path: tuple[str | int, ...],
        *,
        required: bool,
        only_string: bool = False,
    ) -> PropertySpec:
        schema = self.mapping(schema, path, "a property's schema")
        self.known_keys(schema, _PROPERTY_KEYWORDS, path)
        declared = schema.get("type", "string")
        if isinstance(declared, list):
            raise self.fail((*path, "type"), "a wire value is one string: declare one type")
        if declared not in WIRE_TYPES:
            raise self.fail(
                (*path, "type"),
                f"must be one of {', '.join(WIRE_TYPES)}, got {declared!r} "
                "(property values are flat strings on the wire)",
            )
        wire_type = cast("WireType", declared)
        if only_string and wire_type != "string":
            raise self.fail((*path, "type"), "must be string here")
        for keyword in schema:
            if keyword not in _ANY_TYPE and keyword not in _BY_TYPE[wire_type]:
                fits = [t for t in WIRE_TYPES if keyword in _BY_TYPE[t]]
                raise self.fail(
                    (*path, keyword),
                    f"{keyword!r} does not apply to type {wire_type} (it applies to "
                    f"{' and '.join(fits)}: declare that type)",
                )
        self.values(schema, wire_type, path)
        return PropertySpec(key=key, type=wire_type, required=required, schema=schema)

    def values(
        self, schema: Mapping[str, Any], wire_type: WireType, path: tuple[str | int, ...]
    ) -> None:
        if "enum" in schema:
            values = schema["enum"]
            if not isinstance(values, list) or not values or len(values) > MAX_ENUM_VALUES:
                raise self.fail((*path, "enum"), f"must be a list of 1 to {MAX_ENUM_VALUES} values")
            for index, item in enumerate(values):
                self.typed_value(item, wire_type, (*path, "enum", index))
            if len({repr(v) for v in values}) != len(values):
                raise self.fail((*path, "enum"), "values must be unique")
        if "const" in schema:
            self.typed_value(schema["const"], wire_type, (*path, "const"))
        pattern = schema.get("pattern")
        if pattern is not None and (
            not isinstance(pattern, str) or len(pattern) > MAX_PATTERN_CHARS
        ):
            raise self.fail(
                (*path, "pattern"), f"must be a string of at most {MAX_PATTERN_CHARS} characters"
            )
        if "format" in schema and schema["format"] not in FORMATS:
            raise self.fail(
                (*path, "format"),
                f"must be one of {', '.join(sorted(FORMATS))}, got {schema['format']!r}",
            )
        for annotation in ("description", "title"):
            if annotation in schema:
                self.text(schema[annotation], (*path, annotation))

    def object_schema(
        self, schema: Any, path: tuple[str | int, ...]
    ) -> tuple[tuple[PropertySpec, ...], bool]:
        schema = self.mapping(schema, path, "a properties schema")
        self.known_keys(schema, _OBJECT_KEYWORDS, path)
        if schema.get("$schema", DRAFT) != DRAFT:
            raise self.fail((*path, "$schema"), f"must be {DRAFT!r} (or left out)")
        if schema.get("type", "object") != "object":
            raise self.fail(
                (*path, "type"), f"must be 'object' (a map of strings), got {schema['type']!r}"
            )
        declared = self.mapping(schema.get("properties", {}), (*path, "properties"), "properties")
        if len(declared) > MAX_PROPERTIES:
            raise self.fail((*path, "properties"), f"must declare at most {MAX_PROPERTIES} keys")
        required = schema.get("required", [])
        if not isinstance(required, list) or not all(isinstance(k, str) for k in required):
            raise self.fail((*path, "required"), "must be a list of property names")
        for index, key in enumerate(required):
            if key not in declared:
                raise self.fail(
                    (*path, "required", index),
                    f"{key!r} is required but not declared under properties",
                )
        fields = tuple(
            self.property(key, sub, (*path, "properties", key), required=key in required)
            for key, sub in declared.items()
        )
        dependent = schema.get("dependentRequired", {})
        for key, keys in self.mapping(
            dependent, (*path, "dependentRequired"), "dependentRequired"
        ).items():
            for index, other in enumerate(keys if isinstance(keys, list) else [keys]):
                if other not in declared:
                    raise self.fail(
                        (*path, "dependentRequired", key, index),
                        f"{other!r} is not declared under properties",
                    )
        additional = schema.get("additionalProperties", True)
        if not isinstance(additional, bool):
            self.property(
                "*", additional, (*path, "additionalProperties"), required=False, only_string=True
            )
        self.compile(schema, path)
        return fields, additional is not False

    def user_id(self, schema: Any, path: tuple[str | int, ...]) -> Mapping[str, Any]:
        spec = self.property("user_id", schema, path, required=False, only_string=True)
        self.compile(spec.schema, path)
        return spec.schema

    # -- the document ----------------------------------------------------------------------

    def event(self, name: str, value: Any) -> tuple[EventSpec, dict[str, Any]]:
        path: tuple[str | int, ...] = ("events", name)
        self.name(name, path, MAX_NAME_CHARS)
        value = self.mapping({} if value is None else value, path, "an event")
        self.known_keys(value, _EVENT_KEYS, path)
        schema = value.get("properties", {"type": "object"})
        fields, additional = self.object_schema(schema, (*path, "properties"))
        user_id = self.user_id(value["user_id"], (*path, "user_id")) if "user_id" in value else None
        violations = (
            self.override(value["policies"], (*path, "policies")) if "policies" in value else None
        )
        description = self.text(value.get("description", ""), (*path, "description"))
        spec = EventSpec(name, schema, fields, additional, user_id, violations, description)
        return spec, _normal(
            properties=schema, user_id=user_id, violations=violations, description=description
        )

    def alert(self, name: str, value: Any) -> tuple[AlertSpec, dict[str, Any]]:
        path: tuple[str | int, ...] = ("alerts", name)
        self.name(name, path, MAX_ALERT_TYPE_CHARS)
        value = self.mapping({} if value is None else value, path, "an alert type")
        self.known_keys(value, _ALERT_KEYS, path)
        schema = value.get("attributes", {"type": "object"})
        fields, additional = self.object_schema(schema, (*path, "attributes"))
        violations = (
            self.override(value["policies"], (*path, "policies")) if "policies" in value else None
        )
        description = self.text(value.get("description", ""), (*path, "description"))
        spec = AlertSpec(name, schema, fields, additional, violations, description)
        return spec, _normal(attributes=schema, violations=violations, description=description)

    def section(self, data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        value = data.get(key)
        section = self.mapping({} if value is None else value, (key,), key)
        if len(section) > MAX_EVENTS:
            raise self.fail((key,), f"must declare at most {MAX_EVENTS} names")
        return section

    def plan(self, data: Any) -> PlanSpec:
        data = self.mapping(data, (), "a plan")
        # x- keys are the user's (YAML anchors to share, notes), as in Compose and OpenAPI.
        data = {k: v for k, v in data.items() if not k.startswith("x-")}
        self.known_keys(data, _TOP_KEYS, ())
        version = data.get("format", FORMAT_VERSION)
        if version != FORMAT_VERSION or isinstance(version, bool):
            raise self.fail(
                ("format",),
                f"must be {FORMAT_VERSION} (this server's plan format), got {version!r}",
            )
        name = self.text(data.get("name", ""), ("name",))
        description = self.text(data.get("description", ""), ("description",))
        policies = self.policies(data.get("policies", {}), ("policies",))
        events, events_doc = {}, {}
        for event_name, value in self.section(data, "events").items():
            events[event_name], events_doc[event_name] = self.event(event_name, value)
        alerts: dict[str, AlertSpec] | None = None
        alerts_doc: dict[str, Any] | None = None
        if "alerts" in data:
            alerts, alerts_doc = {}, {}
            for alert_type, value in self.section(data, "alerts").items():
                alerts[alert_type], alerts_doc[alert_type] = self.alert(alert_type, value)
        document: dict[str, Any] = {
            "format": FORMAT_VERSION,
            "name": name,
            "policies": {"unplanned": policies.unplanned, "violations": policies.violations},
            "events": events_doc,
        }
        if description:
            document["description"] = description
        if alerts_doc is not None:
            document["alerts"] = alerts_doc
        return PlanSpec(name, policies, events, alerts, description, document)


def _normal(**items: Any) -> dict[str, Any]:
    out = {key: value for key, value in items.items() if value not in (None, "")}
    if "violations" in out:
        out["policies"] = {"violations": out.pop("violations")}
    return out


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"number {value}"
    if isinstance(value, str):
        return f"string {value[:40]!r}"
    return "a list" if isinstance(value, list) else "a mapping"


def parse_plan(document: str | bytes, *, source: str = "<plan>") -> PlanSpec:
    """The plan ``document`` (YAML, or JSON when it starts with ``{``) says, checked.

    Raises :class:`PlanError` with the JSON pointer of the first problem.
    """
    return _Parser(source).plan(load_document(document, source))
