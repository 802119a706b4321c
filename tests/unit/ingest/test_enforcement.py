"""Sorting events by a plan's verdict: rows, quarantine and rejections, without I/O."""

from __future__ import annotations

import orjson
import pytest

from eventwire.api import analytics_pb2
from eventwire.ingest.enforcement import ActivePlan, Sorted, sort_batch
from eventwire.ingest.plan import compile_plan, parse_plan
from eventwire.ingest.rows import properties_of
from eventwire.ingest.rows import row as plain_row
from eventwire.ingest.validation import DEFAULT_LIMITS
from eventwire.observability.plan_metrics import PlanStats
from eventwire.store.base import EventRow

PLAN = """
format: 1
policies: {{unplanned: accept, violations: {policy}}}
events:
  signup:
    properties:
      type: object
      required: [plan]
      properties:
        plan: {{enum: [free, pro]}}
"""


def active(policy: str) -> ActivePlan:
    spec = parse_plan(PLAN.format(policy=policy))
    return ActivePlan(7, spec, compile_plan(spec), 0, "", PlanStats())


def events() -> list[analytics_pb2.TrackEventRequest]:
    return [
        analytics_pb2.TrackEventRequest(
            event_name="signup", event_id="ok", properties={"plan": "pro"}
        ),
        analytics_pb2.TrackEventRequest(
            event_name="signup", event_id="bad", properties={"plan": "x"}
        ),
        analytics_pb2.TrackEventRequest(event_name="", event_id="invalid"),
        analytics_pb2.TrackEventRequest(event_name="click", event_id="unplanned"),
    ]


@pytest.mark.parametrize("policy", ["accept", "quarantine", "reject"])
def test_a_batch_sorted_by_each_policy(policy: str) -> None:
    plan = active(policy)
    sorted_ = Sorted(plan, 1_750_000_000_000)
    invalid = sort_batch(sorted_, events(), "acme", DEFAULT_LIMITS, "events")
    sorted_.count()
    # Validation comes first and is not the plan's: the blank name is invalid either way.
    assert [(i, [v.field for v in found]) for i, found in invalid] == [
        (2, ["events[2].event_name"])
    ]
    stored = {row.event_id: row for row in map(EventRow._make, sorted_.rows)}
    assert {row.plan_version for row in stored.values()} == {7}
    assert not stored["ok"].violations
    # Unplanned events are accepted (the plan's policy), marked as such.
    assert orjson.loads(stored["unplanned"].violations or "[]")[0]["rule"] == "unplanned"
    if policy == "accept":
        found = orjson.loads(stored["bad"].violations or "[]")
        assert [(v["field"], v["rule"]) for v in found] == [("properties.plan", "enum")]
        assert [(f.index, f.outcome) for f in sorted_.flagged] == [(1, "accept"), (3, "accept")]
    elif policy == "quarantine":
        assert "bad" not in stored
        (held,) = sorted_.quarantined
        assert (held.tenant, held.kind, held.key, held.name, held.plan_version) == (
            "acme",
            "event",
            "bad",
            "signup",
            7,
        )
        assert orjson.loads(held.row)[1] == "bad"
    else:
        assert "bad" not in stored
        assert not sorted_.quarantined
        assert [(i, [v.field for v in found]) for i, found in sorted_.rejected] == [
            (1, ["events[1].properties.plan"])
        ]
    counted = plan.stats.versions[7].checked if plan.stats else {}
    assert counted == {"signup": 2, "(unplanned)": 1}


def test_single_and_stream_paths_keep_their_prefix() -> None:
    sorted_ = Sorted(active("reject"), 0)
    row_event = events()[1]
    row = plain_row(row_event, "acme", 1_750_000_000_000, properties_of(row_event))
    assert sorted_.add(row, properties_of(row_event), 3, "stream[3].") == "reject"
    assert sorted_.add(row, properties_of(row_event), 0, "") == "reject"
    assert [v.field for _, found in sorted_.rejected for v in found] == [
        "stream[3].properties.plan",
        "properties.plan",
    ]


@pytest.mark.parametrize(
    "first",
    [
        {"plan": "pro"},  # every event certain: the batch path
        # Valid, but doubted by the quick check after it read the map (a visible
        # no-break space is not "printable"): each event on its own, and the plan
        # must still check each event's own properties.
        {"plan": "pro", "a\u00a0b": "v"},
    ],
)
def test_each_event_is_judged_by_its_own_properties(first: dict[str, str]) -> None:
    sorted_ = Sorted(active("reject"), 1_750_000_000_000)
    batch = [
        analytics_pb2.TrackEventRequest(event_name="signup", event_id="one", properties=first),
        analytics_pb2.TrackEventRequest(
            event_name="signup", event_id="two", properties={"plan": "x"}
        ),
        analytics_pb2.TrackEventRequest(
            event_name="signup", event_id="three", properties={"plan": "free"}
        ),
    ]
    assert sort_batch(sorted_, batch, "acme", DEFAULT_LIMITS, "events") == []
    assert [EventRow(*row).event_id for row in sorted_.rows] == ["one", "three"]
    assert [index for index, _ in sorted_.rejected] == [1]
