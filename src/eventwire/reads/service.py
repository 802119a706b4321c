"""Data out: list, watch, query and export, the same for every front door.

Positions become cursors and page tokens (:mod:`eventwire.reads.cursors`);
live delivery goes through the feed (:mod:`eventwire.reads.feed`); what is
not in it is read from the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final, NamedTuple, TypeVar, cast

from eventwire._errors import (
    FieldViolation,
    InvalidArgument,
    OutOfRange,
    Unavailable,
)
from eventwire.api import analytics_pb2, telemetry_pb2
from eventwire.ingest.alerts import alert_message
from eventwire.reads.checks import (
    BUCKET_MS,
    DEFAULT_PAGE_SIZE,
    DEFAULT_QUERY_LIMIT,
    validate_export,
    validate_list_alerts,
    validate_query,
    validate_tail,
    validate_watch_alerts,
)
from eventwire.reads.cursors import Cursors, fingerprint
from eventwire.reads.feed import (
    CATCH_UP_BYTES,
    CATCH_UP_PAGE,
    AlertFeed,
    Signal,
    event_bytes,
    page_limit,
    pause_while_pending,
    row_bytes,
)
from eventwire.reads.limits import ReadLimits
from eventwire.reads.render import exported_event
from eventwire.reads.rendered import RenderedAlerts
from eventwire.store.base import (
    ORIGIN,
    AlertFilter,
    EventAggregation,
    EventQuery,
    Kind,
    Position,
    Store,
    StoreUnavailable,
)

T = TypeVar("T")
_LIST_WAITS: Final = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
"""Pauses before a list page is cut short by rows still pending (about 0.9 s in all)."""
Cursor = Callable[[Position], str]


class Skipped(NamedTuple):
    """Rows a tail left out (see :meth:`ReadService.tail_events`), and the cursor
    right after the last of them."""

    rows: int
    cursor: str


class ReadService:
    """The read RPCs' logic; see the module docstring."""

    def __init__(
        self, store: Store, feed: AlertFeed, cursors: Cursors, limits: ReadLimits | None = None
    ) -> None:
        self._store = store
        self._feed = feed
        self._cursors = cursors
        self.limits = limits or ReadLimits()
        self._events = Signal()
        self._closing = False
        self._rendered = RenderedAlerts(cursors, self.limits.feed_bytes // 4)
        """Alert messages shared by the watchers of one filter (a quarter of the feed's budget)."""
        store.subscribe(self._on_change)

    @classmethod
    async def start(cls, store: Store, limits: ReadLimits | None = None) -> ReadService:
        """The service for an opened ``store``, its feed running."""
        limits = limits or ReadLimits()
        feed = AlertFeed(store, max_bytes=limits.feed_bytes)
        await feed.start()
        return cls(store, feed, Cursors(await store.cursor_key()), limits)

    async def close(self) -> None:
        self._closing = True
        self._events.fire()
        await self._feed.close()

    def _on_change(self, kind: Kind, xid: int) -> None:
        if kind == "events":
            self._events.fire()

    def _check_open(self) -> None:
        if self._closing or self._feed.closed:
            raise Unavailable("server is shutting down; resume from the last cursor elsewhere")

    # -- alerts ----------------------------------------------------------------------

    def _alert_cursor(self, where: AlertFilter, position: Position) -> str:
        bound = fingerprint(where.device_id, where.alert_type, where.min_severity)
        return self._cursors.encode("alert", where.tenant or "", bound, position)

    async def list_alerts(
        self, req: telemetry_pb2.ListAlertsRequest, tenant: str
    ) -> telemetry_pb2.ListAlertsResponse:
        _raise_if(validate_list_alerts(req))
        where = AlertFilter(
            tenant, req.device_id, req.alert_type, req.min_severity, req.start, req.end
        )
        bound = fingerprint(*where[1:])
        after = ORIGIN
        if req.page_token:
            after = self._cursors.decode("page", tenant, bound, req.page_token, "page_token")
        size = req.page_size or DEFAULT_PAGE_SIZE
        page = await _read(self._store.read_alerts(after, where, size))
        for delay in _LIST_WAITS:
            # Rows held back behind an older transaction still open (PostgreSQL):
            # a short page would look like the end of the list.
            if not page.pending or len(page.rows) >= size:
                break
            await asyncio.sleep(delay)
            page = await _read(self._store.read_alerts(after, where, size))
        await self._check_retained(
            "alerts",
            after,
            bool(req.page_token),
            "page_token",
            lambda mark: self._cursors.encode("page", tenant, bound, mark),
        )
        alerts = [alert_message(r.row, self._alert_cursor(where, r.position)) for r in page.rows]
        token = ""
        if len(page.rows) >= size or page.pending:
            token = self._cursors.encode("page", tenant, bound, page.through)
        return telemetry_pb2.ListAlertsResponse(alerts=alerts, next_page_token=token)

    async def watch_alerts(
        self, req: telemetry_pb2.WatchAlertsRequest, tenant: str
    ) -> AsyncIterator[telemetry_pb2.Alert]:
        """Alerts in commit order, each once, forever (until the server drains).

        Bad requests and stale cursors fail here, before the stream starts.
        """
        _raise_if(validate_watch_alerts(req))
        self._check_open()
        where = AlertFilter(tenant, req.device_id, req.alert_type, req.min_severity)
        bound = fingerprint(where.device_id, where.alert_type, where.min_severity)
        resumed = bool(req.after)
        if resumed:
            position = self._cursors.decode("alert", tenant, bound, req.after, "after")
            await self._check_retained(
                "alerts", position, resumed, "after", lambda mark: self._alert_cursor(where, mark)
            )
        elif req.from_start:
            position = await _read(self._store.retained_after("alerts"))
        else:
            position = self._feed.head
        return self._watch(where, position, resumed=resumed)

    def alerts_now(self, req: telemetry_pb2.WatchAlertsRequest, tenant: str) -> str:
        """A cursor at the live feed's head for ``req``'s filter: a watch after it
        sees every alert committed from now on, however late it starts."""
        _raise_if(validate_watch_alerts(req))
        self._check_open()
        where = AlertFilter(tenant, req.device_id, req.alert_type, req.min_severity)
        return self._alert_cursor(where, self._feed.head)

    async def _watch(
        self, where: AlertFilter, position: Position, *, resumed: bool
    ) -> AsyncIterator[telemetry_pb2.Alert]:
        feed = self._feed
        bound = fingerprint(where.device_id, where.alert_type, where.min_severity)
        waiter = feed.register(where)
        pending = 0
        limit = CATCH_UP_PAGE
        try:
            while True:
                self._check_open()
                # Cleared before looking: an alert arriving after the look sets it again.
                waiter.woken.clear()
                live = feed.since(position)
                if live is not None:
                    rows, through = live
                    sent = False
                    for stored in rows:
                        if where.matches(stored.row):
                            yield self._rendered.get(stored, where.tenant or "", bound)
                            sent = True
                    position = through
                    if not sent and through >= feed.head:
                        await waiter.woken.wait()
                    continue
                # Behind the feed's memory: read the store until caught up.
                asked = limit
                page = await _read(self._store.read_alerts(position, where, asked))
                limit = page_limit(
                    (row_bytes(r.row) for r in page.rows), CATCH_UP_BYTES, CATCH_UP_PAGE
                )
                await self._check_retained(
                    "alerts",
                    position,
                    resumed,
                    "after",
                    lambda mark: self._alert_cursor(where, mark),
                )
                for stored in page.rows:
                    yield self._rendered.get(stored, where.tenant or "", bound)
                position = page.through
                if page.pending and len(page.rows) < asked:
                    await pause_while_pending(feed.updated, pending)
                    pending += 1
                else:
                    pending = 0
        finally:
            feed.unregister(waiter)

    async def _check_retained(
        self, kind: Kind, position: Position, resumed: bool, field: str, cursor_at: Cursor
    ) -> None:
        """OUT_OF_RANGE when rows after a client's ``position`` may have been purged.

        Checked after the read it guards: the retention mark only moves forward,
        so a mark still at or before ``position`` then means nothing was
        missing when the read ran. A stream the client did not resume just
        goes on with what is kept.
        """
        if not resumed:
            return
        mark = await _read(self._store.retained_after(kind))
        if mark <= position:
            return
        raise OutOfRange(
            f"{field} points before the oldest position still stored (older rows were "
            f"deleted by retention); resume from {cursor_at(mark)!r} to continue with what "
            "is kept"
        )

    # -- events ----------------------------------------------------------------------

    async def query_events(
        self, req: analytics_pb2.QueryEventsRequest, tenant: str
    ) -> analytics_pb2.QueryEventsResponse:
        _raise_if(validate_query(req))
        question = EventAggregation(
            req.event_name,
            req.start,
            req.end,
            BUCKET_MS[req.bucket],
            req.group_by,
            req.limit or DEFAULT_QUERY_LIMIT,
        )
        rows = await _read(self._store.aggregate_events(tenant, question))
        return analytics_pb2.QueryEventsResponse(
            rows=[
                analytics_pb2.EventAggregate(
                    bucket_start=r.bucket_start,
                    group=r.group,
                    count=r.count,
                    distinct_users=r.distinct_users,
                )
                for r in rows
            ]
        )

    async def export_events(
        self, req: analytics_pb2.ExportEventsRequest, tenant: str
    ) -> AsyncIterator[analytics_pb2.ExportedEvent]:
        """Every stored event of the range once, in commit order; with ``follow``, forever.

        Bad requests and stale cursors fail here, before the stream starts.
        """
        _raise_if(validate_export(req))
        self._check_open()
        query = EventQuery(req.event_name, "", req.start, req.end)
        bound = fingerprint(req.event_name, req.start, req.end)
        position = await self._event_after(tenant, bound, req.after) if req.after else ORIGIN
        # Without follow: everything committed before the export began.
        end = None if req.follow else await _read(self._store.tail("events"))
        events = self._export(tenant, query, bound, position, end, resumed=bool(req.after))
        return cast(AsyncIterator[analytics_pb2.ExportedEvent], events)  # no take: no skips

    async def _event_after(self, tenant: str, bound: bytes, after: str) -> Position:
        position = self._cursors.decode("event", tenant, bound, after, "after")
        await self._check_retained(
            "events",
            position,
            True,
            "after",
            lambda mark: self._cursors.encode("event", tenant, bound, mark),
        )
        return position

    async def tail_events(
        self,
        tenant: str,
        *,
        event_name: str = "",
        user_id: str = "",
        after: str = "",
        take: Callable[[], bool] | None = None,
    ) -> tuple[str, AsyncIterator[analytics_pb2.ExportedEvent | Skipped]]:
        """The console's live page: events committed after ``after``, or from now on,
        each once, forever; and the cursor of where it starts, to resume from.

        Unlike an export it starts at the end of the table rather than its
        beginning, and it can keep one user's events alone (in the store). A row
        ``take()`` declines is not rendered: a :class:`Skipped` counts it.
        """
        _raise_if(validate_tail(event_name, user_id))
        self._check_open()
        bound = fingerprint("tail", event_name, user_id)
        if after:
            position = await self._event_after(tenant, bound, after)
        else:
            position = await _read(self._store.tail("events"))
        query = EventQuery(event_name, user_id)
        events = self._export(tenant, query, bound, position, None, resumed=bool(after), take=take)
        return self._cursors.encode("event", tenant, bound, position), events

    async def _export(
        self,
        tenant: str,
        query: EventQuery,
        bound: bytes,
        position: Position,
        end: Position | None,
        *,
        resumed: bool,
        take: Callable[[], bool] | None = None,
    ) -> AsyncIterator[analytics_pb2.ExportedEvent | Skipped]:
        pending = 0
        limit = CATCH_UP_PAGE
        while True:
            self._check_open()
            changed = self._events.changed
            asked = limit
            page = await _read(self._store.read_events(position, tenant, query, asked))
            # Pages shrink for big events, so that one page stays about CATCH_UP_BYTES.
            limit = page_limit(
                (event_bytes(r.row) for r in page.rows), CATCH_UP_BYTES, CATCH_UP_PAGE
            )
            await self._check_retained(
                "events",
                position,
                resumed,
                "after",
                lambda mark: self._cursors.encode("event", tenant, bound, mark),
            )
            skipped = 0
            for stored in page.rows:
                if take is None or take():
                    yield exported_event(
                        stored.row, self._cursors.encode("event", tenant, bound, stored.position)
                    )
                else:  # not rendered at all: the cost of a row nobody will see
                    skipped, position = skipped + 1, stored.position
            if skipped:  # told before any wait, so a burst is never left untold
                yield Skipped(skipped, self._cursors.encode("event", tenant, bound, position))
            position = page.through
            if len(page.rows) >= asked:
                pending = 0
                continue
            if end is not None and position >= end:
                return
            if page.pending or end is not None:
                await pause_while_pending(self._events, pending)
                pending += 1
            else:
                pending = 0
                await changed.wait()


def _raise_if(violations: list[FieldViolation]) -> None:
    if violations:
        raise InvalidArgument(violations)


async def _read(awaitable: Awaitable[T]) -> T:
    try:
        return await awaitable
    except StoreUnavailable as exc:
        raise Unavailable("storage is unavailable; retry later") from exc
