"""The one filter builder: the same conditions in each driver's placeholder style."""

from __future__ import annotations

from eventwire.store.base import AlertFilter, EventAggregation, EventQuery
from eventwire.store.filters import (
    PYFORMAT,
    QMARK,
    Conditions,
    alerts_read,
    events_counted,
    events_read,
)


def test_counted_events_use_every_field_that_is_set() -> None:
    where = events_counted(QMARK, "acme", EventQuery("view", "u1", 10, 20))
    assert where.sql() == "tenant = ? AND event_name = ? AND user_id = ? AND ts >= ? AND ts < ?"
    assert where.params == ["acme", "view", "u1", 10, 20]
    assert events_counted(PYFORMAT, "acme", EventQuery()).sql() == "tenant = %s"


def test_read_events_can_spell_columns_for_the_planner() -> None:
    where = Conditions(PYFORMAT).add("(xid, seq) > ({}::text::xid8, {})", 7, 8)
    events_read(where, "acme", EventQuery("view", "u1", 0, 5), spelled="concat({})")
    assert where.sql() == (
        "(xid, seq) > (%s::text::xid8, %s) AND concat(tenant) = %s"
        " AND concat(event_name) = %s AND concat(user_id) = %s AND ts < %s"
    )
    assert where.params == [7, 8, "acme", "view", "u1", 5]


def test_aggregations_filter_like_reads() -> None:
    where = events_read(Conditions(QMARK), "acme", EventAggregation("", 3, 0, 0, "", 10))
    assert (where.sql(), where.params) == ("tenant = ? AND ts >= ?", ["acme", 3])


def test_alerts_for_every_tenant_or_one_even_the_empty_one() -> None:
    every = alerts_read(Conditions(QMARK), AlertFilter(None, "d1", "", 2, 0, 9))
    assert every.sql() == "device_id = ? AND severity >= ? AND ts < ?"
    assert every.params == ["d1", 2, 9]
    empty = alerts_read(Conditions(QMARK), AlertFilter(""))
    assert (empty.sql(), empty.params) == ("tenant = ?", [""])
