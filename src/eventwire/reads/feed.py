"""The live alert feed: every tenant's new alerts read once per commit, fanned out.

A hundred watchers cost one query per commit, not a hundred. What the feed
holds is bounded in bytes; a watcher behind it reads from the store until it
reaches the feed again, and a position is never skipped or repeated in the
hand-over because both sides speak in "complete through" positions.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from collections.abc import Iterable
from typing import Final

from eventwire.store.base import (
    ORIGIN,
    AlertFilter,
    AlertRow,
    EventRow,
    Kind,
    Position,
    Store,
    StoredAlert,
    StoreError,
)

log = logging.getLogger("eventwire.reads")

CATCH_UP_PAGE: Final = 500
"""Most rows per store read while a stream catches up."""
CATCH_UP_BYTES: Final = 2 << 20
"""About the most bytes of rows one catch-up read brings in (pages shrink for big rows)."""
FEED_PAGE: Final = 1000
FEED_BYTES: Final = 32 << 20
"""Default bytes of recent alerts the feed keeps for watchers that are a little behind."""
SLICE_BYTES: Final = 256 << 10
"""Most bytes of rows one watcher takes from the feed at a time: a watcher
that stalls mid-slice keeps only that much alive after the feed drops it."""
ROW_OVERHEAD: Final = 640
"""Bytes a held alert costs beyond its strings' characters (tuples, ints, headers)."""
_PENDING_DELAYS: Final = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1)
"""Re-read delays while committed rows wait for an older transaction (PostgreSQL)."""
_FEED_RETRY: Final = 0.5


# -- wake-ups --------------------------------------------------------------------------


class Signal:
    """A broadcast "something changed": wait on :attr:`changed`, taken *before* looking."""

    def __init__(self) -> None:
        self.changed = asyncio.Event()

    def fire(self) -> None:
        fired, self.changed = self.changed, asyncio.Event()
        fired.set()


async def pause_while_pending(signal: Signal, attempt: int) -> None:
    """Wait for a notification, or a short while when rows are held back."""
    delay = _PENDING_DELAYS[min(attempt, len(_PENDING_DELAYS) - 1)]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(signal.changed.wait(), delay)


# -- the live alert feed -------------------------------------------------------------


def row_bytes(row: AlertRow) -> int:
    """What holding ``row`` costs, about: characters counted as bytes, plus the objects."""
    return (
        ROW_OVERHEAD
        + len(row.message)
        + len(row.attributes)
        + len(row.tracking_id)
        + len(row.device_id)
        + len(row.alert_type)
        + len(row.tenant)
    )


def event_bytes(row: EventRow) -> int:
    """What holding an event row costs, about, like :func:`row_bytes`."""
    return (
        ROW_OVERHEAD
        + len(row.properties)
        + len(row.event_id)
        + len(row.event_name)
        + len(row.user_id)
    )


def page_limit(sizes: Iterable[int], target: int, most: int) -> int:
    """Rows for the next read so that it brings about ``target`` bytes, judged by the
    ``sizes`` of the rows the last one brought."""
    total = count = 0
    for size in sizes:
        total += size
        count += 1
    if not count:
        return most
    return max(1, min(most, target * count // total))


class Waiter:
    """One watcher's wake-up: set when an alert it wants enters the feed."""

    __slots__ = ("where", "woken")

    def __init__(self, where: AlertFilter) -> None:
        self.where = where
        self.woken = asyncio.Event()


class AlertFeed:
    """Every tenant's alerts, read once per commit, fanned out to the watchers.

    Holds the alerts after :attr:`floor` up to :attr:`head` in commit order;
    everything in that range is there, so a watcher at a position inside it
    can go on from memory. What it holds is counted in bytes (:func:`row_bytes`)
    and kept under ``max_bytes`` by dropping the oldest, however big the
    alerts are; a watcher left below :attr:`floor` reads from the store.
    Watchers are woken only by alerts their filter takes (found through a
    (tenant, device) index), so a hundred watchers of one device each cost
    nothing when another device reports.
    """

    def __init__(self, store: Store, *, max_bytes: int = FEED_BYTES) -> None:
        self._store = store
        self.max_bytes = max_bytes
        self._rows: list[StoredAlert] = []
        self._positions: list[Position] = []
        self._sizes: list[int] = []
        self.held = 0
        """Bytes of the alerts held now (see :func:`row_bytes`)."""
        self.floor = ORIGIN
        self.head = ORIGIN
        self.updated = Signal()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.closed = False
        self._waiters: dict[tuple[str | None, str], set[Waiter]] = {}

    def register(self, where: AlertFilter) -> Waiter:
        waiter = Waiter(where)
        self._waiters.setdefault((where.tenant, where.device_id), set()).add(waiter)
        return waiter

    def unregister(self, waiter: Waiter) -> None:
        key = (waiter.where.tenant, waiter.where.device_id)
        waiters = self._waiters.get(key)
        if waiters is not None:
            waiters.discard(waiter)
            if not waiters:
                del self._waiters[key]

    async def start(self) -> None:
        self.head = self.floor = await self._store.head("alerts")
        self._store.subscribe(self._on_change)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="eventwire-feed")

    async def close(self) -> None:
        """Stop reading; watchers end with UNAVAILABLE (resume elsewhere from their cursor)."""
        self.closed = True
        self.updated.fire()
        for waiters in self._waiters.values():
            for waiter in waiters:
                waiter.woken.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _on_change(self, kind: Kind, xid: int) -> None:
        # head (W, 0) holds every alert of transactions older than W.
        if kind == "alerts" and (not xid or xid >= self.head.xid):
            self._wake.set()

    async def _run(self) -> None:
        pending = 0
        limit = FEED_PAGE
        while True:
            if pending:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), _PENDING_DELAYS[min(pending, 5)])
            else:
                await self._wake.wait()
            self._wake.clear()
            try:
                page = await self._store.read_alerts(self.head, AlertFilter(None), limit)
            except StoreError as exc:
                log.warning("alert feed cannot read: %s", exc)
                await asyncio.sleep(_FEED_RETRY)
                self._wake.set()
                continue
            self._append(page.rows, page.through)
            if len(page.rows) >= limit:
                self._wake.set()
            # One read brings about a quarter of what the feed may hold, so a
            # burst of big alerts is never read in one piece.
            limit = page_limit(
                map(row_bytes, (r.row for r in page.rows)),
                max(CATCH_UP_BYTES, self.max_bytes // 4),
                FEED_PAGE,
            )
            pending = pending + 1 if page.pending else 0

    def _append(self, rows: list[StoredAlert], through: Position) -> None:
        if not rows and through <= self.head:
            return
        sizes = [row_bytes(r.row) for r in rows]
        self._rows.extend(rows)
        self._positions.extend(r.position for r in rows)
        self._sizes.extend(sizes)
        self.held += sum(sizes)
        self.head = max(self.head, through)
        if self.held > self.max_bytes:
            self._trim(self.max_bytes - self.max_bytes // 4)  # in steps, not on every append
        waiters = self._waiters
        if waiters:
            for stored in rows:
                row = stored.row
                for key in ((row.tenant, row.device_id), (row.tenant, "")):
                    for waiter in waiters.get(key, ()):
                        if waiter.where.matches(row):
                            waiter.woken.set()
        self.updated.fire()

    def _trim(self, target: int) -> None:
        """Drop the oldest alerts until at most ``target`` bytes are held."""
        held, dropped = self.held, 0
        sizes = self._sizes
        while held > target and dropped < len(sizes):
            held -= sizes[dropped]
            dropped += 1
        if dropped:
            self.floor = self._positions[dropped - 1]
            del self._rows[:dropped]
            del self._positions[:dropped]
            del self._sizes[:dropped]
            self.held = held

    def since(self, position: Position) -> tuple[list[StoredAlert], Position] | None:
        """Alerts after ``position`` and how far that is complete; None if not in memory.

        At most about :data:`SLICE_BYTES` of them: then complete through the
        last one given, and the watcher asks again.
        """
        if position < self.floor:
            return None
        start = bisect.bisect_right(self._positions, position)
        sizes = self._sizes
        end, taken = start, 0
        while end < len(sizes) and taken < SLICE_BYTES:
            taken += sizes[end]
            end += 1
        if end < len(sizes):
            return self._rows[start:end], self._positions[end - 1]
        return self._rows[start:], max(position, self.head)
