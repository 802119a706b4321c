"""Data out: list, watch, query and export, the same for every front door.

Positions come from the store (commit order, see :mod:`eventwire.store.base`);
this module turns them into opaque cursors and page tokens, bound to the
caller's tenant and to the filter they were issued for, and signed with a
secret kept in the database (so every replica accepts every other's cursors
and nobody can forge or retarget one).

Live delivery goes through one :class:`AlertFeed` per process: it reads every
tenant's new alerts once per commit notification and fans them out in memory,
so a hundred watchers cost one query per commit, not a hundred. A watcher that
starts from an old cursor, or falls behind the feed's buffer, reads from the
store until it reaches the feed again; a position is never skipped or repeated
in the hand-over because both sides speak in "complete through" positions.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import contextlib
import hashlib
import hmac
import logging
import struct
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Final, TypeVar

import orjson

from eventwire._errors import (
    FieldViolation,
    InvalidArgument,
    OutOfRange,
    Overloaded,
    Unavailable,
)
from eventwire.api import analytics_pb2, telemetry_pb2
from eventwire.ingest.read_checks import (
    BUCKET_MS,
    DEFAULT_PAGE_SIZE,
    DEFAULT_QUERY_LIMIT,
    validate_export,
    validate_list_alerts,
    validate_query,
    validate_watch_alerts,
)
from eventwire.store.base import (
    ORIGIN,
    AlertFilter,
    AlertRow,
    EventAggregation,
    EventQuery,
    Kind,
    Position,
    Store,
    StoredAlert,
    StoredEvent,
    StoreError,
    StoreUnavailable,
)

log = logging.getLogger("eventwire.reads")

T = TypeVar("T")
Cursor = Callable[[Position], str]

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

# -- cursors ---------------------------------------------------------------------------

_VERSION: Final = 1
_LAYOUT: Final = struct.Struct(">BQQ")
_MAC_BYTES: Final = 16
_TOKEN_BYTES: Final = _LAYOUT.size + _MAC_BYTES


def fingerprint(*parts: object) -> bytes:
    """What a cursor is bound to, besides the tenant: the filter it was issued for."""
    return hashlib.sha256(orjson.dumps(parts)).digest()


class Cursors:
    """Opaque, signed positions: ``base64url(version | xid | seq | mac)``."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, purpose: str, tenant: str, bound: bytes, body: bytes) -> bytes:
        message = b"\0".join((purpose.encode(), tenant.encode(), bound, body))
        return hmac.new(self._key, message, hashlib.sha256).digest()[:_MAC_BYTES]

    def encode(self, purpose: str, tenant: str, bound: bytes, position: Position) -> str:
        body = _LAYOUT.pack(_VERSION, position.xid, position.seq)
        token = body + self._mac(purpose, tenant, bound, body)
        return base64.urlsafe_b64encode(token).rstrip(b"=").decode()

    def decode(self, purpose: str, tenant: str, bound: bytes, token: str, field: str) -> Position:
        """The position in ``token``; :class:`InvalidArgument` naming ``field`` otherwise."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except ValueError:
            raw = b""
        if len(raw) != _TOKEN_BYTES or raw[0] != _VERSION:
            raise InvalidArgument([FieldViolation(field, "is not a cursor this server issued")])
        body, mac = raw[: _LAYOUT.size], raw[_LAYOUT.size :]
        if not hmac.compare_digest(mac, self._mac(purpose, tenant, bound, body)):
            # Forged, corrupted, or issued for another tenant or another filter:
            # reinterpreting it would silently skip or repeat rows.
            raise InvalidArgument(
                [
                    FieldViolation(
                        field,
                        "was issued for another filter, another tenant or another request "
                        "kind; resume with the same filter it came from",
                    )
                ]
            )
        _, xid, seq = _LAYOUT.unpack(body)
        return Position(xid, seq)


# -- wake-ups --------------------------------------------------------------------------


class Signal:
    """A broadcast "something changed": wait on :attr:`changed`, taken *before* looking."""

    def __init__(self) -> None:
        self.changed = asyncio.Event()

    def fire(self) -> None:
        fired, self.changed = self.changed, asyncio.Event()
        fired.set()


async def _pause_while_pending(signal: Signal, attempt: int) -> None:
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


def page_limit(rows: list[StoredAlert], target: int, most: int) -> int:
    """Rows for the next read so that it brings about ``target`` bytes, judged by the last."""
    if not rows:
        return most
    average = sum(row_bytes(r.row) for r in rows) // len(rows)
    return max(1, min(most, target // average))


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
            limit = page_limit(page.rows, max(CATCH_UP_BYTES, self.max_bytes // 4), FEED_PAGE)
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


# -- the service ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReadLimits:
    """What the read side may hold in memory, and how long a stalled reader is kept.

    ``feed_bytes`` bounds the live feed; the cache of rendered messages that
    watchers with one filter share gets a quarter of it more. A streaming
    reply holds at most ``stream_buffer_bytes`` for its client; a client that
    leaves that buffer full for ``stream_stall_seconds`` is told where to
    resume and disconnected.
    """

    feed_bytes: int = FEED_BYTES
    stream_buffer_bytes: int = 1 << 20
    stream_stall_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.feed_bytes < 0 or self.stream_buffer_bytes < 1 or self.stream_stall_seconds <= 0:
            raise ValueError("need feed_bytes >= 0, stream_buffer_bytes >= 1, stall > 0")


class ReaderTooSlow(Overloaded):
    """A streaming reply's client stopped reading for too long; ``cursor`` is where to resume."""

    def __init__(self, cursor: str, limits: ReadLimits) -> None:
        where = f"resume with after={cursor!r}" if cursor else "resume with the same request"
        super().__init__(
            f"the client read nothing for {limits.stream_stall_seconds:g} s with "
            f"{limits.stream_buffer_bytes} bytes waiting for it; the stream is closed: {where}",
            0,
        )
        self.cursor = cursor


def _alert_filter(tenant: str, device_id: str, alert_type: str, min_severity: int) -> AlertFilter:
    return AlertFilter(tenant, device_id, alert_type, min_severity)


def alert_message(row: AlertRow, cursor: str = "") -> telemetry_pb2.Alert:
    return telemetry_pb2.Alert(
        tracking_id=row.tracking_id,
        device_id=row.device_id,
        alert_type=row.alert_type,
        timestamp=row.timestamp,
        received_at=row.received_at,
        severity=telemetry_pb2.Severity.ValueType(row.severity),
        message=row.message,
        attributes=orjson.loads(row.attributes) if row.attributes != "{}" else None,
        cursor=cursor,
    )


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
        self._rendered: OrderedDict[
            tuple[Position, str, bytes], tuple[telemetry_pb2.Alert, int]
        ] = OrderedDict()
        self.rendered_bytes = 0
        """Bytes of the rendered messages kept (see :func:`row_bytes`)."""
        store.subscribe(self._on_change)

    @classmethod
    async def start(cls, store: Store, limits: ReadLimits | None = None) -> ReadService:
        """The service for an opened ``store``, its feed running."""
        limits = limits or ReadLimits()
        feed = AlertFeed(store, max_bytes=limits.feed_bytes)
        await feed.start()
        return cls(store, feed, Cursors(await store.cursor_key()), limits)

    @property
    def held(self) -> int:
        """Bytes the feed and the rendered-message cache hold now."""
        return self._feed.held + self.rendered_bytes

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
        await self._check_retained(
            "alerts",
            after,
            bool(req.page_token),
            "page_token",
            lambda mark: self._cursors.encode("page", tenant, bound, mark),
        )
        alerts = [alert_message(r.row, self._alert_cursor(where, r.position)) for r in page.rows]
        token = ""
        if len(page.rows) >= size:
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
        where = _alert_filter(tenant, req.device_id, req.alert_type, req.min_severity)
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
                            yield self._render(stored, where, bound)
                            sent = True
                    position = through
                    if not sent and through >= feed.head:
                        await waiter.woken.wait()
                    continue
                # Behind the feed's memory: read the store until caught up.
                asked = limit
                page = await _read(self._store.read_alerts(position, where, asked))
                limit = page_limit(page.rows, CATCH_UP_BYTES, CATCH_UP_PAGE)
                await self._check_retained(
                    "alerts",
                    position,
                    resumed,
                    "after",
                    lambda mark: self._alert_cursor(where, mark),
                )
                for stored in page.rows:
                    yield self._render(stored, where, bound)
                position = page.through
                if page.pending and len(page.rows) < asked:
                    await _pause_while_pending(feed.updated, pending)
                    pending += 1
                else:
                    pending = 0
        finally:
            feed.unregister(waiter)

    def _render(self, stored: StoredAlert, where: AlertFilter, bound: bytes) -> telemetry_pb2.Alert:
        """The Alert message for a watcher; watchers with the same filter share one."""
        key = (stored.position, where.tenant or "", bound)
        kept = self._rendered.get(key)
        if kept is not None:
            return kept[0]
        cursor = self._cursors.encode("alert", where.tenant or "", bound, stored.position)
        message = alert_message(stored.row, cursor)
        size = row_bytes(stored.row)
        cap = self.limits.feed_bytes // 4
        if size <= cap:
            self._rendered[key] = (message, size)
            self.rendered_bytes += size
            while self.rendered_bytes > cap:
                _, (_, dropped) = self._rendered.popitem(last=False)
                self.rendered_bytes -= dropped
        return message

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
        resumed = bool(req.after)
        position = ORIGIN
        if resumed:
            position = self._cursors.decode("event", tenant, bound, req.after, "after")
            await self._check_retained(
                "events",
                position,
                resumed,
                "after",
                lambda mark: self._cursors.encode("event", tenant, bound, mark),
            )
        # Without follow: everything committed before the export began.
        end = None if req.follow else await _read(self._store.tail("events"))
        return self._export(tenant, query, bound, position, end, resumed=resumed)

    async def _export(
        self,
        tenant: str,
        query: EventQuery,
        bound: bytes,
        position: Position,
        end: Position | None,
        *,
        resumed: bool,
    ) -> AsyncIterator[analytics_pb2.ExportedEvent]:
        pending = 0
        while True:
            self._check_open()
            changed = self._events.changed
            page = await _read(self._store.read_events(position, tenant, query, CATCH_UP_PAGE))
            await self._check_retained(
                "events",
                position,
                resumed,
                "after",
                lambda mark: self._cursors.encode("event", tenant, bound, mark),
            )
            for stored in page.rows:
                yield self._exported(stored, tenant, bound)
            position = page.through
            if len(page.rows) >= CATCH_UP_PAGE:
                pending = 0
                continue
            if end is not None and position >= end:
                return
            if page.pending or end is not None:
                await _pause_while_pending(self._events, pending)
                pending += 1
            else:
                pending = 0
                await changed.wait()

    def _exported(
        self, stored: StoredEvent, tenant: str, bound: bytes
    ) -> analytics_pb2.ExportedEvent:
        row = stored.row
        return analytics_pb2.ExportedEvent(
            event=analytics_pb2.TrackEventRequest(
                event_name=row.event_name,
                user_id=row.user_id,
                timestamp=row.timestamp,
                properties=orjson.loads(row.properties) if row.properties != "{}" else None,
                event_id=row.event_id,
            ),
            cursor=self._cursors.encode("event", tenant, bound, stored.position),
            received_at=row.received_at,
        )


def _raise_if(violations: list[FieldViolation]) -> None:
    if violations:
        raise InvalidArgument(violations)


async def _read(awaitable: Awaitable[T]) -> T:
    try:
        return await awaitable
    except StoreUnavailable as exc:
        raise Unavailable("storage is unavailable; retry later") from exc
