"""Plan metrics keep bounded label sets whatever names and versions come."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from eventwire.ingest.plan import ACCEPTED, Verdict, Violation
from eventwire.observability.plan_metrics import (
    MAX_NAMES,
    MAX_VERSIONS,
    OTHER,
    UNPLANNED,
    PlanStats,
)


def test_names_rules_and_versions_are_bounded() -> None:
    stats = PlanStats()
    unplanned = Verdict("accept", (Violation("event_name", "unplanned", "x"),), planned=False)
    for n in range(10_000):
        stats.checked(1, f"random-{n}", unplanned)
    assert set(stats.versions[1].checked) == {UNPLANNED}
    assert stats.versions[1].checked[UNPLANNED] == 10_000
    stats.conformed(1, {f"planned-{n}": 1 for n in range(MAX_NAMES + 50)})
    names = set(stats.versions[1].checked)
    assert len(names) == MAX_NAMES + 2  # the first MAX_NAMES, (other), (unplanned)
    assert stats.versions[1].checked[OTHER] == 50
    bad = Verdict("quarantine", (Violation("properties.p", "enum", "no"),), planned=True)
    stats.checked(1, "planned-0", bad)
    assert stats.versions[1].outcomes["planned-0", "quarantine"] == 1
    assert stats.versions[1].violations["planned-0", "enum"] == 1
    for version in range(2, 20):
        stats.checked(version, "planned-0", ACCEPTED)
    assert sorted(stats.versions) == list(range(20 - MAX_VERSIONS, 20))


def test_exported_families() -> None:
    registry = CollectorRegistry()
    stats = PlanStats(registry)
    stats.installed(3)
    stats.conformed(3, {"signup": 2})
    text = generate_latest(registry).decode()
    assert 'eventwire_plan_events_checked_total{event_name="signup",plan_version="3"} 2.0' in text
    assert "eventwire_plan_version 3.0" in text
