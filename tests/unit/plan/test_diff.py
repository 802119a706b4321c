"""diff_plans: one readable line per change, nothing for formatting or defaults."""

from __future__ import annotations

from eventwire.ingest.plan import diff_plans, parse_plan
from tests.support.paths import ROOT

EXAMPLE = (ROOT / "examples" / "tracking-plan.yaml").read_text()


def test_a_first_plan_lists_its_events_and_policies() -> None:
    assert diff_plans(None, parse_plan(EXAMPLE)) == [
        "+ plan 'web'",
        "  policies: unplanned=accept, violations=quarantine",
        "+ events.page_view",
        "+ events.signup",
    ]


def test_the_same_plan_written_differently_has_no_changes() -> None:
    old = parse_plan(EXAMPLE)
    new = parse_plan(old.canonical_json())
    assert diff_plans(old, new) == []


def test_changes_are_listed_by_path() -> None:
    old = parse_plan(EXAMPLE)
    changed = (
        EXAMPLE.replace("enum: [free, pro]", "enum: [free, pro, team]")
        .replace("violations: quarantine", "violations: reject")
        .replace("  page_view:", "  checkout: {}\n  page_view:")
        .replace("    description: A page was shown.\n", "")
    )
    assert diff_plans(old, parse_plan(changed)) == [
        "+ events.checkout",
        "- events.page_view.description",
        "~ events.signup.properties.properties.plan.enum: "
        "['free', 'pro'] -> ['free', 'pro', 'team']",
        "~ policies.violations: 'quarantine' -> 'reject'",
    ]


def test_odd_names_are_quoted_and_long_values_cut() -> None:
    old = parse_plan('{"events": {"Order Completed": {}}}')
    enum = [f"v{i}" for i in range(100)]
    new = parse_plan(
        '{"events": {"Order Completed": {"description": "d"}, "a.b": {"properties": '
        '{"properties": {"x": {"enum": ' + str(enum).replace("'", '"') + "}}}}}}"
    )
    lines = diff_plans(old, new)
    assert lines[0] == "+ events.'Order Completed'.description"
    assert lines[1] == "+ events.'a.b'"
    assert diff_plans(new, old)[0] == "- events.'Order Completed'.description"
    assert all(len(line) < 200 for line in diff_plans(parse_plan('{"events": {"a.b": {}}}'), new))
