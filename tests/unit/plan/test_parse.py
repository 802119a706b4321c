"""parse_plan: a broken plan is refused with the JSON pointer of the problem."""

from __future__ import annotations

import json

import pytest

from eventwire.ingest.plan import PlanError, Policies, parse_plan
from eventwire.ingest.plan.loading import MAX_DEPTH, MAX_DOCUMENT_BYTES
from eventwire.ingest.plan.parse import MAX_ENUM_VALUES, MAX_EVENTS
from tests.support.paths import ROOT

EXAMPLE = ROOT / "examples" / "tracking-plan.yaml"


def _event(schema: object) -> str:
    return json.dumps({"events": {"signup": {"properties": schema}}})


def _prop(schema: object) -> str:
    return _event({"properties": {"plan": schema}})


def refused(document: str | bytes) -> PlanError:
    with pytest.raises(PlanError) as info:
        parse_plan(document, source="test.yaml")
    assert str(info.value).startswith("test.yaml: ")
    return info.value


def test_the_example_is_the_issues_worked_example() -> None:
    spec = parse_plan(EXAMPLE.read_text())
    assert spec.policies == Policies(unplanned="accept", violations="quarantine")
    assert set(spec.events) == {"signup", "page_view"}
    (plan,) = spec.events["signup"].fields
    assert (plan.key, plan.type, plan.required, plan.enum) == (
        "plan",
        "string",
        True,
        ("free", "pro"),
    )
    (path,) = spec.events["page_view"].fields
    assert (path.required, path.schema["pattern"]) == (True, "^/")
    assert spec.alerts is None


def test_yaml_and_json_of_one_plan_have_the_same_canonical_bytes() -> None:
    yaml_spec = parse_plan(EXAMPLE.read_bytes())
    json_spec = parse_plan(json.dumps(yaml_spec.document, indent=2))
    assert json_spec.canonical_json() == yaml_spec.canonical_json()
    assert json_spec == yaml_spec


def test_defaults_written_out_or_left_implicit_give_the_same_bytes() -> None:
    implicit = parse_plan('{"events": {"a": {}}}')
    explicit = parse_plan(
        "format: 1\nname: ''\npolicies: {unplanned: accept, violations: accept}\nevents:\n  a:\n"
        "    properties: {type: object}\n"
    )
    assert implicit.canonical_json() == explicit.canonical_json()
    assert implicit.canonical_json() == (
        b'{"events":{"a":{"properties":{"type":"object"}}},"format":1,"name":"",'
        b'"policies":{"unplanned":"accept","violations":"accept"}}'
    )


@pytest.mark.parametrize(
    ("document", "pointer", "reason"),
    [
        ("[1]", "", "a plan must be a mapping"),
        ('{"evnets": {}}', "/evnets", "unknown key 'evnets'"),
        ('{"format": 2}', "/format", "must be 1"),
        ('{"events": []}', "/events", "events must be a mapping, got a list"),
        (
            _event({"$schema": "http://json-schema.org/draft-07/schema#"}),
            "/events/signup/properties/$schema",
            "draft/2020-12",
        ),
        ('{"policies": {"violations": "drop"}}', "/policies/violations", "must be one of accept"),
        ('{"events": {" ": {}}}', "/events/ ", "empty or blank"),
        ('{"events": {"a\\u200bb": {}}}', "/events/a\u200bb", "U+200B"),
        ('{"events": {"a/b": {"x": 1}}}', "/events/a~1b/x", "unknown key 'x'"),
        (
            '{"events": {"a": {"policies": {"unplanned": "reject"}}}}',
            "/events/a/policies/unplanned",
            "never unplanned",
        ),
        (_event({"type": "array"}), "/events/signup/properties/type", "must be 'object'"),
        (
            _event({"required": ["plan"]}),
            "/events/signup/properties/required/0",
            "'plan' is required but not declared",
        ),
        (
            _event({"patternProperties": {}}),
            "/events/signup/properties/patternProperties",
            "unknown",
        ),
        (
            _prop({"type": "object"}),
            "/events/signup/properties/properties/plan/type",
            "flat strings",
        ),
        (
            _prop({"type": ["string", "null"]}),
            "/events/signup/properties/properties/plan/type",
            "one type",
        ),
        (
            _prop({"minimum": 1}),
            "/events/signup/properties/properties/plan/minimum",
            "integer and number",
        ),
        (
            _prop({"type": "integer", "pattern": "^1"}),
            "/events/signup/properties/properties/plan/pattern",
            "does not apply to type integer",
        ),
        (_prop({"enum": ["a", 1]}), "/events/signup/properties/properties/plan/enum/1", "quote it"),
        (_prop({"enum": []}), "/events/signup/properties/properties/plan/enum", "list of 1 to"),
        (_prop({"enum": ["a", "a"]}), "/events/signup/properties/properties/plan/enum", "unique"),
        (
            _prop({"type": "integer", "enum": [1, True]}),
            "/events/signup/properties/properties/plan/enum/1",
            "boolean",
        ),
        (
            _prop({"type": "integer", "const": 1.5}),
            "/events/signup/properties/properties/plan/const",
            "number 1.5",
        ),
        (
            _prop({"format": "color"}),
            "/events/signup/properties/properties/plan/format",
            "must be one of",
        ),
        (_prop({"minLength": -1}), "/events/signup/properties/properties/plan/minLength", "-1"),
        (
            _prop({"pattern": "(unclosed"}),
            "/events/signup/properties/properties/plan/pattern",
            "regular expression",
        ),
        (
            _prop({"pattern": "(?<=a)b"}),
            "/events/signup/properties/properties/plan/pattern",
            "no lookaround",
        ),
        (
            _prop({"pattern": "(a)\\1"}),
            "/events/signup/properties/properties/plan/pattern",
            "no backreferences",
        ),
        (
            '{"events": {"a": {"user_id": {"type": "integer"}}}}',
            "/events/a/user_id/type",
            "must be string here",
        ),
        (
            '{"alerts": {"disk": {"attributes": {"properties": {"z": {"maxLength": "x"}}}}}}',
            "/alerts/disk/attributes/properties/z/maxLength",
            "",
        ),
    ],
)
def test_a_broken_plan_is_refused_with_a_pointer(document: str, pointer: str, reason: str) -> None:
    error = refused(document)
    assert error.pointer == pointer, error
    assert reason in error.reason, error


def test_yaml_booleans_in_a_string_enum_say_to_quote_them() -> None:
    error = refused(
        "events:\n  a:\n    properties:\n      properties:\n        ok: {enum: [yes, no]}\n"
    )
    assert error.pointer == "/events/a/properties/properties/ok/enum/0"
    assert "YAML reads yes/no" in error.reason


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ("events: [unclosed", "not valid YAML: line 1"),
        ('{"events": ', "not valid JSON: line 1"),
        ('{"events": {}, "events": {}}', "duplicate key 'events'"),
        ("events: {}\nevents: {}\n", "duplicate key 'events'"),
        ("events: &a {x: *a}", "recursive"),
        ("events:\n  a:\n    <<: [1]\n", "merge key (<<) takes mappings only"),
        ("events:\n  1: {}\n", "not a string"),
        ("events:\n  a:\n    description: 2026-12-07\n", "YAML date is not a JSON value"),
        (
            "events:\n  a:\n    properties: {properties: {n: {type: number, maximum: .inf}}}\n",
            "not a JSON number",
        ),
        (b"events: {\xff}", "not UTF-8"),
    ],
)
def test_documents_that_are_not_plain_json_data_are_refused(
    document: str | bytes, reason: str
) -> None:
    assert reason in str(refused(document))


def test_an_alias_bomb_is_refused_when_it_expands_past_the_budget() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 30)]
    error = refused("\n".join(lines))
    assert error.reason == "line 1: expands to more than 250000 values (YAML aliases)"
    assert error.pointer.startswith("/a8/")


@pytest.mark.parametrize("opener", ["[", '{"a": '])
def test_deep_nesting_is_refused_at_the_limit_not_by_recursion(opener: str) -> None:
    json_doc = opener * 100_000  # far past Python's recursion limit
    assert "nested deeper" in refused("{" + '"a": ' + json_doc).reason
    yaml_doc = "a: " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)
    assert "nested deeper than 32" in refused(yaml_doc).reason


def test_a_huge_document_is_refused_before_it_is_read() -> None:
    document = "events: {}\n#" + "x" * MAX_DOCUMENT_BYTES
    assert "larger than" in refused(document).reason
    assert "larger than" in refused(document.encode()).reason


def test_too_many_events_or_enum_values_are_refused() -> None:
    events: dict[str, object] = {f"e{i}": {} for i in range(MAX_EVENTS + 1)}
    assert refused(json.dumps({"events": events})).pointer == "/events"
    assert refused(_prop({"enum": [str(i) for i in range(MAX_ENUM_VALUES + 1)]})).pointer.endswith(
        "/enum"
    )


def test_a_huge_compiled_pattern_is_refused() -> None:
    error = refused(_prop({"pattern": "(a{1000}){1000}"}))
    assert error.pointer.endswith("/pattern")
    assert "compiled size" in error.reason


def test_a_catastrophic_backtracking_pattern_is_accepted_because_matching_is_linear() -> None:
    # (a+)+$ backtracks exponentially in engines like Python's re; the plan's engine is
    # linear, so the pattern is harmless and allowed (test_check.py runs it on a long string).
    spec = parse_plan(_prop({"pattern": "(a+)+$"}))
    assert spec.events["signup"].fields[0].schema["pattern"] == "(a+)+$"


def test_empty_and_null_documents() -> None:
    assert refused("").reason.startswith("a plan must be a mapping")
    spec = parse_plan("{}")
    assert dict(spec.events) == {}
    assert spec.alerts is None
    assert parse_plan("alerts: {}").alerts == {}


def test_yaml_flow_style_is_read_even_though_it_starts_like_json() -> None:
    assert set(parse_plan("{events: {a: {}, b: {}}}").events) == {"a", "b"}
    assert "not valid JSON: line 1 column 12" in refused('{"events": ]').reason


SHARED = """
x-common: &common
  type: object
  required: [plan]
  properties:
    plan: {enum: [free, pro]}
events:
  signup:
    properties: *common
  upgrade:
    properties:
      <<: *common
      required: [plan, from]
      properties:
        plan: {enum: [pro]}
        from: {enum: [free]}
"""


def test_anchors_aliases_and_merge_keys_share_definitions() -> None:
    spec = parse_plan(SHARED)
    assert spec.events["signup"].properties == {
        "type": "object",
        "required": ["plan"],
        "properties": {"plan": {"enum": ["free", "pro"]}},
    }
    upgrade = spec.events["upgrade"]
    assert upgrade.properties["type"] == "object"  # merged
    assert upgrade.properties["required"] == ["plan", "from"]  # explicit keys win
    assert [f.key for f in upgrade.fields] == ["plan", "from"]
    assert b"x-common" not in spec.canonical_json()
