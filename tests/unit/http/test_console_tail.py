"""The Live tail's cap: rows past what a page can draw are counted, with a cursor after them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson

from eventwire.api import analytics_pb2
from eventwire.frontends.http.console.tail import RateCap, tail_lines
from eventwire.frontends.http.reads import Line
from eventwire.reads.service import Skipped


def test_the_cap_lets_a_windows_worth_through_then_none_until_the_next() -> None:
    now = [10.0]
    cap = RateCap(per_second=40, window=0.25, clock=lambda: now[0])
    assert [cap() for _ in range(12)] == [True] * 10 + [False] * 2
    now[0] += 0.2
    assert not cap()
    now[0] += 0.05
    assert [cap() for _ in range(11)] == [True] * 10 + [False]


async def test_skips_become_lines_the_page_counts_and_resumes_after() -> None:
    async def rows() -> AsyncIterator[analytics_pb2.ExportedEvent | Skipped]:
        yield analytics_pb2.ExportedEvent(cursor="c1")
        yield Skipped(998, "c999")
        yield analytics_pb2.ExportedEvent(cursor="c1000")

    items = [item async for item in tail_lines("c0", rows())]
    assert isinstance(items[0], Line)
    assert orjson.loads(items[0].body) == {"start": "c0"}
    assert items[1].cursor == "c1"
    assert isinstance(items[2], Line)
    assert (orjson.loads(items[2].body), items[2].cursor) == (
        {"skipped": 998, "cursor": "c999"},
        "c999",
    )
    assert items[3].cursor == "c1000"
