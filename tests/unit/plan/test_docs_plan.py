"""docs/tracking-plans.md says what the code does: its example is the file, its tables true."""

from __future__ import annotations

import re
from typing import Final

from eventwire.ingest.plan import RULES, compile_plan, parse_plan
from eventwire.ingest.plan.loading import MAX_VALUES
from eventwire.ingest.plan.parse import FORMATS, MAX_ENUM_VALUES, MAX_EVENTS, MAX_PATTERN_CHARS
from tests.support.doc_examples import blocks
from tests.support.paths import ROOT

PAGE: Final = (ROOT / "docs" / "tracking-plans.md").read_text(encoding="utf-8")
EXAMPLE: Final = ROOT / "examples" / "tracking-plan.yaml"
MARKER: Final = "<!-- example: examples/tracking-plan.yaml"


def test_the_quoted_example_is_the_example_file() -> None:
    line = PAGE[: PAGE.index(MARKER)].count("\n") + 1
    quoted = next(b for b in blocks(PAGE) if b.language == "yaml" and b.line > line)
    assert quoted.body == EXAMPLE.read_text(encoding="utf-8")
    assert parse_plan(quoted.body) == parse_plan(EXAMPLE.read_bytes())


def test_the_outcome_table_is_what_the_example_does() -> None:
    plan = compile_plan(parse_plan(EXAMPLE.read_bytes()))
    rows = {
        ("signup", "plan=pro"): ("accept", None),
        ("signup", "plan=team"): ("quarantine", ("properties.plan", "enum")),
        ("signup", ""): ("quarantine", ("properties.plan", "required")),
        ("page_view", "path=pricing"): ("quarantine", ("properties.path", "pattern")),
        ("checkout", ""): ("accept", ("event_name", "unplanned")),
    }
    for (name, prop), (outcome, first) in rows.items():
        props = dict([prop.split("=")]) if prop else {}
        verdict = plan.check_event(name, props, "")
        assert verdict.outcome == outcome
        found = (
            (verdict.violations[0].field, verdict.violations[0].rule)
            if verdict.violations
            else None
        )
        assert found == first
    assert "'team'" in plan.check_event("signup", {"plan": "team"}, "").violations[0].message


def test_every_rule_and_format_is_documented() -> None:
    section = PAGE[PAGE.index("## Verdicts and violations") : PAGE.index("## Policies")]
    assert set(re.findall(r"`([a-z_]+)`", section)) >= RULES
    assert all(f"`{name}`" in PAGE for name in FORMATS)


def test_the_limits_table_states_the_code_limits() -> None:
    assert f"| {MAX_EVENTS:,} each |" in PAGE
    assert f"| {MAX_ENUM_VALUES:,} |" in PAGE
    assert f"{MAX_PATTERN_CHARS:,} characters" in PAGE


def test_the_sharing_example_parses() -> None:
    sharing = next(b for b in blocks(PAGE) if b.language == "yaml" and "x-checkout" in b.body)
    spec = parse_plan(sharing.body)
    assert [f.key for f in spec.events["checkout_completed"].fields] == ["cart_id", "total"]
    assert spec.events["checkout_started"].fields[0].required
    assert f"| {MAX_VALUES:,} |" in PAGE
