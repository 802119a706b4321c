"""Per-plan-version metrics on /metrics, with label sets bounded whatever names clients send."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from eventwire.api import analytics_pb2
from tests.support.plans import event, serving, signup_plan


async def test_plan_metrics_count_outcomes_with_bounded_labels(tmp_path: object) -> None:
    async with serving(f"sqlite:///{tmp_path}/e.db") as s:
        await s.apply(signup_plan("quarantine"))
        random_names = [event(f"r{i}", None, name=f"random-{i}") for i in range(300)]
        bad = [event(f"b{i}", "gold") for i in range(5)]
        good = [event(f"g{i}", "pro") for i in range(7)]
        await s.analytics.TrackEvents(analytics_pb2.EventBatch(events=random_names + bad + good))
        port = s.server.metrics_port
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        if family.name.startswith("eventwire_plan")
        for sample in family.samples
    }
    checked = {k[1]: v for k, v in samples.items() if k[0] == "eventwire_plan_events_checked_total"}
    assert checked == {
        (("event_name", "(unplanned)"), ("plan_version", "1")): 300,
        (("event_name", "signup"), ("plan_version", "1")): 12,
    }
    flagged = {k[1]: v for k, v in samples.items() if k[0] == "eventwire_plan_events_flagged_total"}
    assert flagged == {
        (
            ("event_name", "(unplanned)"),
            ("outcome", "accepted_with_violations"),
            ("plan_version", "1"),
        ): 300,
        (("event_name", "signup"), ("outcome", "quarantine"), ("plan_version", "1")): 5,
    }
    violations = {k[1]: v for k, v in samples.items() if k[0] == "eventwire_plan_violations_total"}
    assert violations[("event_name", "signup"), ("plan_version", "1"), ("rule", "enum")] == 5
    assert samples["eventwire_plan_version", ()] == 1
