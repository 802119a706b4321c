"""The Live page's event tail, capped: at most ``per_second`` rows a second reach
the page; the rest are counted, never silently dropped.

A page draws about a hundred rows a second, so sending it every row of a
100,000 events/s stream would only spend the server's CPU on JSON nobody sees
(``bench/console.py`` measured an uncapped open page halving ingest). Rows past
the cap are not even rendered (:meth:`ReadService.tail_events` asks
:class:`RateCap` before it builds each one); a line ``{"skipped": N, "cursor":
C}`` says how many were left out, with the cursor after the last of them: the
page adds them to what it reports skipping, and resumes after them. Skips are
told at the end of each page the store returns, before the tail waits for
more, so a burst followed by silence is never left untold.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Final

import orjson

from eventwire.api import analytics_pb2
from eventwire.frontends.http.reads import Line
from eventwire.reads.service import Skipped

ROWS_PER_SECOND: Final = 200
"""Twice what the page draws, so a page that draws every row never sees a skip."""
WINDOW_SECONDS: Final = 0.25


class RateCap:
    """``cap()`` is True for at most ``per_second * window`` calls in each window."""

    __slots__ = ("_clock", "_ends", "_left", "_per_window", "_window")

    def __init__(
        self,
        per_second: int = ROWS_PER_SECOND,
        window: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._per_window = max(1, round(per_second * window))
        self._window = window
        self._clock = clock
        self._ends = 0.0
        self._left = 0

    def __call__(self) -> bool:
        if self._left:
            self._left -= 1
            return True
        now = self._clock()
        if now < self._ends:
            return False
        self._ends = now + self._window
        self._left = self._per_window - 1
        return True


def start_line(cursor: str) -> Line:
    return Line(b'{"start":%s}' % orjson.dumps(cursor), cursor)


async def tail_lines(
    start: str, events: AsyncIterator[analytics_pb2.ExportedEvent | Skipped]
) -> AsyncIterator[analytics_pb2.ExportedEvent | Line]:
    """The start line, then the events, a :class:`Skipped` as a ``skipped`` line."""
    yield start_line(start)
    async for item in events:
        if isinstance(item, Skipped):
            body = b'{"skipped":%d,"cursor":%s}' % (item.rows, orjson.dumps(item.cursor))
            yield Line(body, item.cursor)
        else:
            yield item
