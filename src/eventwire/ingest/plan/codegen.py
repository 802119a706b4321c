"""``generate_python``: a module of typed tracking functions, one per planned event.

The output passes ``mypy --strict``. Each function takes a ``Tracker`` or
``SyncTracker`` (their ``track`` has one signature and never blocks, so one
function serves both) and keyword arguments typed from the event's schema:

* ``enum``/``const`` → ``Literal[...]`` (number enums holding fractions stay ``float``);
* ``integer`` → ``int``, ``number`` → ``float``, ``boolean`` → ``bool``, each
  converted to the wire spelling :mod:`.wire` decodes;
* ``format: date-time`` → an aware ``datetime`` (sent as UTC ``...Z``),
  ``format: date`` → ``date``; any other string → ``str``;
* required keys are required keywords, the others default to None and are
  left out; ``extra_properties`` carries undeclared keys when the schema
  allows them, and ``user_id`` is required when the plan requires it.

Everything taken from the plan enters the output as a ``repr`` literal (names,
enum values, descriptions as docstrings), so no plan can inject code.
"""

from __future__ import annotations

import hashlib
import keyword
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from eventwire.ingest.plan.model import EventSpec, PlanSpec, PropertySpec

__all__ = ["function_name", "generate_python"]

_RESERVED: Final = frozenset(
    {"tracker", "user_id", "timestamp", "event_id", "extra_properties", "properties"}
)
_CAMEL: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NOT_WORD: Final = re.compile(r"[^a-z0-9]+")

_HELPERS: Final[Mapping[str, str]] = {
    "_int": """
def _int(name: str, value: int) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    return str(value)
""",
    "_number": """
def _number(name: str, value: float) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float or an int, got {type(value).__name__}")
    if isinstance(value, int):
        return str(value)
    if not _math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return repr(value)
""",
    "_bool": """
def _bool(name: str, value: bool) -> str:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return "true" if value else "false"
""",
    "_datetime": """
def _datetime(name: str, value: _dt.datetime) -> str:
    if not isinstance(value, _dt.datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware: RFC 3339 needs an offset")
    return value.astimezone(_dt.timezone.utc).isoformat().replace("+00:00", "Z")
""",
    "_date": """
def _date(name: str, value: _dt.date) -> str:
    if isinstance(value, _dt.datetime) or not isinstance(value, _dt.date):
        raise TypeError(f"{name} must be a date (not a datetime), got {type(value).__name__}")
    return value.isoformat()
""",
    "_str": """
def _str(name: str, value: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    return value
""",
}


def _snake(text: str) -> str:
    text = _CAMEL.sub("_", text).lower()
    return _NOT_WORD.sub("_", text.encode("ascii", "replace").decode()).strip("_")


def _unique(base: str, taken: set[str]) -> str:
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


def function_name(event_name: str, taken: set[str]) -> str:
    """``track_`` and the event name in snake case, unique within ``taken``."""
    return _unique("track_" + (_snake(event_name) or "event"), taken)


def _argument_name(key: str, taken: set[str]) -> str:
    base = _snake(key) or "value"
    if base[0].isdigit():
        base = "p_" + base
    if keyword.iskeyword(base) or base in _RESERVED:
        base += "_"
    return _unique(base, taken)


def _literal(values: Iterable[Any]) -> str:
    return f"Literal[{', '.join(repr(v) for v in values)}]"


def _annotation(field: PropertySpec) -> tuple[str, str]:
    """The Python type of ``field`` and the helper converting it to the wire string."""
    enum = field.enum
    converter = {"integer": "_int", "number": "_number", "boolean": "_bool"}.get(field.type, "_str")
    if field.type == "string" and enum is None:
        if field.format == "date-time":
            return "_dt.datetime", "_datetime"
        if field.format == "date":
            return "_dt.date", "_date"
    if enum is not None and not (
        field.type == "number" and any(isinstance(v, float) for v in enum)
    ):
        return _literal(enum), converter
    python = {"integer": "int", "number": "float", "boolean": "bool"}.get(field.type, "str")
    return python, converter


def _doc(event: EventSpec, arguments: list[tuple[str, PropertySpec]]) -> str:
    lines = [event.description or f"Track {event.name!r}."]
    notes = [
        f"{name}"
        + ("" if name == field.key else f" (property {field.key!r})")
        + (f": {field.description}" if field.description else "")
        for name, field in arguments
        if field.description or name != field.key
    ]
    return repr("\n".join([*lines, "", *notes] if notes else lines))


def _function(event: EventSpec, name: str, used: set[str]) -> str:
    taken = set(_RESERVED)
    arguments = [(_argument_name(f.key, taken), f) for f in event.fields]
    user_required = event.user_id is not None and int(event.user_id.get("minLength", 0)) > 0
    params = ["    tracker: Tracker | SyncTracker,", "    *,"]
    body = [
        "    properties: dict[str, str] = "
        + (
            "{} if extra_properties is None else dict(extra_properties)"
            if event.additional
            else "{}"
        )
    ]
    for arg, field in arguments:
        python, converter = _annotation(field)
        used.update((converter, "Literal") if python.startswith("Literal[") else (converter,))
        call = f"{converter}({arg!r}, {arg})"
        if field.required:
            params.append(f"    {arg}: {python},")
            body.append(f"    properties[{field.key!r}] = {call}")
        else:
            params.append(f"    {arg}: {python} | None = None,")
            body.append(f"    if {arg} is not None:")
            body.append(f"        properties[{field.key!r}] = {call}")
    params.append("    user_id: str," if user_required else '    user_id: str = "",')
    params.append("    timestamp: int | float | _dt.datetime | None = None,")
    params.append("    event_id: str | None = None,")
    if event.additional:
        used.add("Mapping")
        params.append("    extra_properties: Mapping[str, str] | None = None,")
    body.append(
        f"    return tracker.track({event.name!r}, user_id=user_id, properties=properties, "
        "timestamp=timestamp, event_id=event_id)"
    )
    return "\n".join(
        [f"def {name}(", *params, ") -> str:", f"    {_doc(event, arguments)}", *body, ""]
    )


def generate_python(spec: PlanSpec) -> str:
    """The source of a module with one typed tracking function per event of ``spec``."""
    digest = hashlib.sha256(spec.canonical_json()).hexdigest()
    taken: set[str] = set()
    used: set[str] = set()
    names = {event: function_name(event, taken) for event in spec.events}
    functions = [_function(spec.events[event], names[event], used) for event in spec.events]
    title = f"the tracking plan {spec.name!r}" if spec.name else "a tracking plan"
    doc = (
        f"Typed tracking functions for {title}: generated by eventwire, do not edit.\n\n"
        "Regenerate with ``eventwire plans codegen --python OUT.py`` when the plan changes.\n"
        "Each function queues one event on a Tracker or SyncTracker and returns its event id."
    )
    exported = sorted([*names.values(), "EVENTS", "PLAN_SHA256"])
    head = [
        repr(doc),
        "",
        "from __future__ import annotations",
        "",
        "import datetime as _dt",
        *(["import math as _math"] if "_number" in used else []),
        *(["from collections.abc import Mapping"] if "Mapping" in used else []),
        "from typing import Final" + (", Literal" if "Literal" in used else ""),
        "",
        "from eventwire.client import SyncTracker, Tracker",
        "",
        f"__all__ = {exported!r}",
        "",
        f"PLAN_SHA256: Final = {digest!r}",
        '"""SHA-256 of the canonical JSON of the plan this module was generated from."""',
        f"EVENTS: Final[tuple[str, ...]] = {tuple(spec.events)!r}",
    ]
    helpers = [_HELPERS[name] for name in sorted(used) if name in _HELPERS]
    return "\n".join([*head, *helpers, "", *functions])
