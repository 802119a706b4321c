"""generate_python: the module's shape (its behaviour and mypy --strict are integration tests)."""

from __future__ import annotations

import ast
import json
from typing import Any

from eventwire.ingest.plan import generate_python, parse_plan
from eventwire.ingest.plan.codegen import function_name
from tests.support.paths import ROOT

EXAMPLE = parse_plan((ROOT / "examples" / "tracking-plan.yaml").read_text())


def functions(source: str) -> dict[str, ast.FunctionDef]:
    tree = ast.parse(source)
    return {
        n.name: n
        for n in tree.body
        if isinstance(n, ast.FunctionDef) and not n.name.startswith("_")
    }


def signature(fn: ast.FunctionDef) -> dict[str, tuple[str, bool]]:
    """keyword -> (annotation, required)."""
    args = fn.args
    return {
        a.arg: (ast.unparse(a.annotation) if a.annotation else "", d is None)
        for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)
    }


def test_one_function_per_event_typed_from_the_schema() -> None:
    found = functions(generate_python(EXAMPLE))
    assert set(found) == {"track_signup", "track_page_view"}
    sig = signature(found["track_signup"])
    assert sig["plan"] == ("Literal['free', 'pro']", True)
    assert sig["user_id"] == ("str", False)
    assert sig["extra_properties"] == ("Mapping[str, str] | None", False)
    assert signature(found["track_page_view"])["path"] == ("str", True)
    assert (
        ast.unparse(found["track_signup"].args.args[0].annotation or ast.Pass())
        == "Tracker | SyncTracker"
    )


def test_types_optionals_and_renamed_keys() -> None:
    props: dict[str, Any] = {
        "count": {"type": "integer", "minimum": 0},
        "price": {"type": "number"},
        "rating": {"type": "number", "enum": [1, 2]},
        "ratio": {"type": "number", "enum": [0.5, 1]},
        "trial": {"type": "boolean"},
        "at": {"type": "string", "format": "date-time"},
        "day": {"type": "string", "format": "date"},
        "Plan Type": {"enum": ["a", "b'\"c"]},
        "class": {},
        "timestamp": {},
        "2fa": {},
    }
    document = {
        "events": {
            "Order Completed": {
                "properties": {
                    "properties": props,
                    "required": ["count"],
                    "additionalProperties": False,
                },
                "user_id": {"minLength": 1},
            },
            "order-completed": {},
            "import": {},
        }
    }
    source = generate_python(parse_plan(json.dumps(document)))
    found = functions(source)
    assert set(found) == {"track_order_completed", "track_order_completed_2", "track_import"}
    sig = signature(found["track_order_completed"])
    assert sig == {
        "count": ("int", True),
        "price": ("float | None", False),
        "rating": ("Literal[1, 2] | None", False),
        "ratio": ("float | None", False),
        "trial": ("bool | None", False),
        "at": ("_dt.datetime | None", False),
        "day": ("_dt.date | None", False),
        "plan_type": ("Literal['a', 'b\\'\"c'] | None", False),
        "class_": ("str | None", False),
        "timestamp_": ("str | None", False),
        "p_2fa": ("str | None", False),
        "user_id": ("str", True),
        "timestamp": ("int | float | _dt.datetime | None", False),
        "event_id": ("str | None", False),
    }  # no extra_properties: the schema allows no other key
    assert "properties['Plan Type'] = " in source


def test_nothing_from_the_plan_can_become_code() -> None:
    evil = '"""\nimport os; os.system("x")\n"""'
    name = "'''; import os; os.system('x'); '''"  # a name cannot hold a newline
    document = {
        "name": evil,
        "events": {
            name: {
                "description": evil,
                "properties": {"properties": {evil: {"description": evil, "enum": [evil]}}},
            }
        },
    }
    source = generate_python(parse_plan(json.dumps(document)))
    tree = ast.parse(source)
    calls = [ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert "os.system" not in calls
    assert not any(isinstance(n, ast.Import) and n.names[0].name == "os" for n in ast.walk(tree))


def test_function_names_are_identifiers() -> None:
    taken: set[str] = set()
    for name in ("signup", "CheckoutStarted", "café ☕", "", "___", "1st"):
        assert function_name(name, taken).isidentifier()
    assert len(taken) == 6
