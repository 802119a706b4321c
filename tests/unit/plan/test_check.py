"""CompiledPlan: verdicts for each rule, each policy and each shape of plan."""

from __future__ import annotations

import json
from typing import Any

import pytest

from eventwire.ingest.plan import (
    ACCEPTED,
    MAX_VIOLATIONS,
    NOT_GOVERNED,
    RULES,
    CompiledPlan,
    Verdict,
    Violation,
    compile_plan,
    parse_plan,
)
from tests.support.paths import ROOT

EXAMPLE = compile_plan(parse_plan((ROOT / "examples" / "tracking-plan.yaml").read_text()))


def plan_of(properties: dict[str, Any], **event: Any) -> CompiledPlan:
    schema = {"type": "object", "properties": properties, "required": event.pop("required", [])}
    if "additional" in event:
        schema["additionalProperties"] = event.pop("additional")
    document = {
        "policies": {"violations": "reject"},
        "events": {"e": {"properties": schema, **event}},
    }
    return compile_plan(parse_plan(json.dumps(document)))


def only(verdict: Verdict) -> Violation:
    assert verdict.outcome == "reject", verdict
    assert verdict.planned
    (violation,) = verdict.violations
    assert violation.rule in RULES
    return violation


def test_the_worked_example() -> None:
    assert EXAMPLE.check_event("signup", {"plan": "pro"}, "") is ACCEPTED
    assert EXAMPLE.check_event("page_view", {"path": "/pricing", "extra": "x"}, "u") is ACCEPTED
    team = EXAMPLE.check_event("signup", {"plan": "team"}, "")
    assert team == Verdict(
        "quarantine",
        (Violation("properties.plan", "enum", "must be one of 'free', 'pro'; got 'team'"),),
        True,
    )
    missing = EXAMPLE.check_event("page_view", {}, "")
    assert missing.violations == (Violation("properties.path", "required", "is required"),)
    relative = EXAMPLE.check_event("page_view", {"path": "pricing"}, "")
    assert [(v.field, v.rule) for v in relative.violations] == [("properties.path", "pattern")]
    unplanned = EXAMPLE.check_event("checkout", {}, "")
    assert unplanned == Verdict(
        "accept",
        (Violation("event_name", "unplanned", "is not declared by the tracking plan"),),
        False,
    )


@pytest.mark.parametrize(
    ("schema", "good", "bad", "rule"),
    [
        ({"type": "integer"}, "-42", "4.2", "type"),
        ({"type": "integer", "minimum": 1}, "1", "0", "minimum"),
        ({"type": "integer", "exclusiveMaximum": 10}, "9", "10", "maximum"),
        ({"type": "integer", "multipleOf": 5}, "15", "16", "multiple_of"),
        ({"type": "integer", "enum": [1, 2]}, "2", "3", "enum"),
        ({"type": "number", "minimum": 0}, "0.5", "-0.5", "minimum"),
        ({"type": "number"}, "1e3", "1,5", "type"),
        ({"type": "boolean"}, "false", "False", "type"),
        ({"type": "boolean", "const": True}, "true", "false", "enum"),
        (
            {"type": "string", "format": "date-time"},
            "2026-12-07T13:00:00Z",
            "2026-12-07 13:00",
            "format",
        ),
        ({"type": "string", "format": "date"}, "2026-12-07", "07/12/2026", "format"),
        ({"type": "string", "format": "email"}, "a@example.com", "nobody", "format"),
        (
            {"type": "string", "format": "uuid"},
            "0190c0de-0000-7000-8000-000000000000",
            "x",
            "format",
        ),
        ({"enum": ["free", "pro"]}, "pro", "Pro", "enum"),
        ({"const": "v1"}, "v1", "v2", "const"),
        ({"pattern": "^/"}, "/a", "a/", "pattern"),
        ({"minLength": 2}, "ab", "a", "min_length"),
        ({"maxLength": 2}, "ab", "abc", "max_length"),
        ({"maxLength": 1}, "👩‍💻"[0], "ab", "max_length"),
    ],
)
def test_each_string_typed_rule(schema: dict[str, Any], good: str, bad: str, rule: str) -> None:
    plan = plan_of({"p": schema})
    assert plan.check_event("e", {"p": good}, "") is ACCEPTED
    violation = only(plan.check_event("e", {"p": bad}, ""))
    assert (violation.field, violation.rule) == ("properties.p", rule)
    assert repr(bad)[1:-1][:10] in violation.message or rule in ("min_length", "max_length")


def test_a_type_violation_says_how_to_spell_the_type() -> None:
    plan = plan_of({"n": {"type": "integer"}}, required=["n"])
    violation = only(plan.check_event("e", {"n": "1.0"}, ""))
    assert violation == Violation(
        "properties.n",
        "type",
        'must be a decimal integer in the signed 64-bit range, like "42" or "-7"; got \'1.0\'',
    )  # and not also "required": the key is there, just misspelt


def test_additional_properties_and_property_counts() -> None:
    closed = plan_of({"a": {}}, additional=False)
    assert closed.check_event("e", {"a": "x"}, "") is ACCEPTED
    verdict = closed.check_event("e", {"a": "x", "b": "y", "c": "z"}, "")
    assert {(v.field, v.rule) for v in verdict.violations} == {
        ("properties.b", "additional"),
        ("properties.c", "additional"),
    }
    limited = plan_of({}, additional={"maxLength": 3})
    assert [v.rule for v in limited.check_event("e", {"x": "long"}, "").violations] == [
        "max_length"
    ]


def test_every_violation_is_listed_and_their_number_is_capped() -> None:
    plan = plan_of({f"p{i}": {"type": "integer"} for i in range(40)} | {"q": {"enum": ["a"]}})
    few = plan.check_event("e", {"p1": "x", "q": "b"}, "")
    assert sorted((v.field, v.rule) for v in few.violations) == [
        ("properties.p1", "type"),
        ("properties.q", "enum"),
    ]
    many = plan.check_event("e", {f"p{i}": "x" for i in range(40)}, "")
    assert len(many.violations) == MAX_VIOLATIONS


def test_messages_stay_short_whatever_the_values() -> None:
    plan = plan_of({"p": {"enum": [f"value-{i}" * 20 for i in range(500)]}})
    (violation,) = plan.check_event("e", {"p": "x" * 8192}, "").violations
    assert violation.rule == "enum"
    assert len(violation.message) <= 200


def test_user_id_rules() -> None:
    plan = plan_of({}, user_id={"minLength": 1, "pattern": "^u-"})
    assert plan.check_event("e", {}, "u-1") is ACCEPTED
    assert only(plan.check_event("e", {}, "")) == Violation("user_id", "required", "is required")
    assert only(plan.check_event("e", {}, "x")).rule == "pattern"
    assert (
        plan_of({}, user_id={"format": "uuid"}).check_event("e", {}, "").violations[0].rule
        == "format"
    )


def test_policies_per_plan_and_per_event() -> None:
    document = {
        "policies": {"unplanned": "reject", "violations": "quarantine"},
        "events": {
            "a": {"properties": {"required": ["x"], "properties": {"x": {}}}},
            "b": {
                "properties": {"required": ["x"], "properties": {"x": {}}},
                "policies": {"violations": "accept"},
            },
        },
    }
    plan = compile_plan(parse_plan(json.dumps(document)))
    assert plan.check_event("a", {}, "").outcome == "quarantine"
    accepted_b = plan.check_event("b", {}, "")
    assert accepted_b.outcome == "accept"
    assert accepted_b.violations
    assert plan.check_event("c", {}, "").outcome == "reject"
    assert not plan.check_event("c", {}, "").planned
    assert plan.check_event("a", {"x": ""}, "") is ACCEPTED


def test_defaults_accept_everything_and_record_unplanned() -> None:
    plan = compile_plan(parse_plan("events: {a: {}}"))
    assert plan.check_event("a", {"anything": "goes"}, "") is ACCEPTED
    verdict = plan.check_event("b", {}, "")
    assert (verdict.outcome, verdict.planned, verdict.violations[0].rule) == (
        "accept",
        False,
        "unplanned",
    )


def test_alerts() -> None:
    assert EXAMPLE.check_alert("disk_full", {"zone": "x"}) is NOT_GOVERNED
    document = {
        "policies": {"unplanned": "quarantine", "violations": "reject"},
        "alerts": {
            "disk_full": {
                "attributes": {
                    "required": ["zone"],
                    "properties": {
                        "zone": {"pattern": "^eu-"},
                        "pct": {"type": "number", "maximum": 100},
                    },
                }
            },
            "heartbeat": {},
        },
    }
    plan = compile_plan(parse_plan(json.dumps(document)))
    assert plan.check_alert("disk_full", {"zone": "eu-1", "pct": "99.5"}) is ACCEPTED
    assert plan.check_alert("heartbeat", {"a": "b"}) is ACCEPTED
    bad = plan.check_alert("disk_full", {"zone": "us-1", "pct": "101"})
    assert bad.outcome == "reject"
    assert {(v.field, v.rule) for v in bad.violations} == {
        ("attributes.zone", "pattern"),
        ("attributes.pct", "maximum"),
    }
    unplanned = plan.check_alert("cpu", {})
    assert (unplanned.outcome, unplanned.planned, unplanned.violations[0].field) == (
        "quarantine",
        False,
        "alert_type",
    )
    # A plan that governs alerts does not thereby govern no events: events stay unplanned-by-policy.
    assert plan.check_event("x", {}, "").outcome == "quarantine"


def test_catastrophic_backtracking_pattern_runs_in_linear_time() -> None:
    # In a backtracking engine (Python's re, hence jsonschema and fastjsonschema) each of
    # these checks takes ~2**n steps: the test would hang until pytest-timeout ends it.
    # The plan's engine matches in linear time, so both are over in microseconds.
    plan = plan_of({"p": {"pattern": "(a+)+$"}, "q": {"pattern": "^(a|a)*b$"}})
    verdict = plan.check_event("e", {"p": "a" * 8000 + "!", "q": "a" * 8000}, "")
    assert [(v.field, v.rule) for v in verdict.violations] == [
        ("properties.p", "pattern"),
        ("properties.q", "pattern"),
    ]
    assert plan.check_event("e", {"p": "a" * 8000, "q": "a" * 8000 + "b"}, "") is ACCEPTED


def test_verdicts_are_frozen_values() -> None:
    with pytest.raises(AttributeError):
        ACCEPTED.outcome = "reject"  # type: ignore[misc]
    assert hash(ACCEPTED) == hash(Verdict("accept", (), True))


def test_a_plan_at_the_size_limit_compiles_and_checks() -> None:
    # ~1 MiB of schemas, the most a plan may hold: 40 events of 40 enum properties of
    # 40 values. Parsing and compiling must stay proportional to the size (no blow-up);
    # this run takes a fraction of a second, a quadratic walk would take minutes.
    values = [f"value-{i:04d}" for i in range(40)]
    props = {f"p{i}": {"enum": values, "maxLength": 100} for i in range(40)}
    events = {f"e{j}": {"properties": {"properties": props}} for j in range(40)}
    document = json.dumps({"policies": {"violations": "reject"}, "events": events})
    assert 900_000 < len(document) < 1024 * 1024
    plan = compile_plan(parse_plan(document))
    assert plan.check_event("e39", {f"p{i}": "value-0039" for i in range(40)}, "") is ACCEPTED
    verdict = plan.check_event("e0", {f"p{i}": "x" * 8192 for i in range(40)}, "")
    assert len(verdict.violations) == MAX_VIOLATIONS
