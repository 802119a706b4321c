"""One destination's relay: committed rows in commit order, delivered, then remembered.

The loop, per destination: hold the lease (a row in the store, see
:meth:`Store.claim_destination`; replicas that do not hold it stand by and
try again every third of a lease), read a page of events and one of alerts
after the saved positions, render each row as the gateway's JSON, hand the
matching ones to the sink, and only after :meth:`Sink.deliver` returned save
the positions (which extends the lease). A crash between delivery and save
delivers a page again; the kinds make that harmless.

Failures: a :class:`Retryable` one is retried forever with the client SDK's
backoff (``RetryPolicy``, jitter) or the destination's ``retry_after`` if
longer, behind a :class:`CircuitBreaker` per destination; the lease is
renewed while it waits, so a long outage does not hand the destination to
another replica. A batch the destination :class:`Rejected` ``attempts`` times
goes to the destination's dead letters and the relay moves on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from eventwire.destinations.items import alert_items, event_items
from eventwire.destinations.sink import DeliveryError, Item, Rejected, Retryable, Sink
from eventwire.destinations.spec import DestinationSpec
from eventwire.resilience.backoff import backoff, is_testing
from eventwire.resilience.breaker import BreakerOpen, CircuitBreaker
from eventwire.resilience.policy import CircuitBreakerPolicy, RetryPolicy
from eventwire.store.base import (
    ORIGIN,
    AlertFilter,
    DeadLetter,
    EventQuery,
    Kind,
    Position,
    Store,
    StoreError,
)

log = logging.getLogger("eventwire.destinations")

POLL_SECONDS: Final = 1.0
"""Longest the relay sleeps without a commit notification (PostgreSQL NOTIFY can be lost)."""
RETRY: Final = RetryPolicy(initial_backoff=0.1, max_backoff=10.0, max_attempts=10)
BREAKER: Final = CircuitBreakerPolicy(window_size=10, minimum_calls=5, open_duration=5.0)
_KINDS: Final[tuple[Kind, ...]] = ("events", "alerts")
LAG_CAP: Final = 10_000_000
CHECK_SECONDS: Final = 0.25


@dataclass
class RelayStatus:
    """What one relay did and where it is, for metrics, ``eventwire top`` and operations."""

    name: str
    state: str = "starting"
    """``relaying``, ``standby`` (another replica holds the lease), ``paused``,
    ``retrying`` (the destination fails) or ``stopped``."""
    delivered: int = 0
    retried: int = 0
    dead_lettered: int = 0
    lag_rows: int = 0
    lag_seconds: float = 0.0
    breaker: str = "closed"
    last_error: str = ""
    positions: dict[str, Position] = field(
        default_factory=lambda: {"events": ORIGIN, "alerts": ORIGIN}
    )


class LeaseLost(Exception):
    """Another replica holds the destination now, or an operator changed it."""


class Relay:
    def __init__(
        self,
        spec: DestinationSpec,
        sink: Sink,
        store: Store,
        *,
        owner: str,
        lease_seconds: float = 5.0,
        retry: RetryPolicy = RETRY,
        breaker: CircuitBreakerPolicy = BREAKER,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.spec = spec
        self._sink = sink
        self._store = store
        self._owner = owner
        self._lease_ms = int(lease_seconds * 1000)
        self._retry = retry
        self._clock = clock
        self.breaker = CircuitBreaker(breaker, name=f"destination {spec.name}")
        self.status = RelayStatus(spec.name)
        self._wake = asyncio.Event()
        self._stopping = False
        self._sink_started = False
        self._generation = -1
        self._positions = {"events": ORIGIN, "alerts": ORIGIN}
        self._ahead: dict[Kind, tuple[Position, asyncio.Future[tuple[list[Item], int, Position]]]]
        self._ahead = {}
        self._checked = self._saved_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self._lag_task: asyncio.Task[None] | None = None

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def wake(self, kind: Kind = "events", xid: int = 0) -> None:
        self._wake.set()

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run(), name=f"eventwire-relay-{self.spec.name}")
        self._lag_task = loop.create_task(self._measure_lag(), name="eventwire-relay-lag")

    async def close(self) -> None:
        self._stopping = True
        self._wake.set()
        for _, read in self._ahead.values():
            read.cancel()
        for task in (self._task, self._lag_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        with contextlib.suppress(StoreError):
            await self._store.release_destination(self.spec.name, self._owner)
        await self._sink.close()
        self.status.state = "stopped"

    # -- the loop ------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            try:
                if await self._claim():
                    await self._relay()
                else:
                    await self._sleep(self._lease_ms / 3000)
            except LeaseLost:
                continue
            except StoreError as exc:
                self.status.last_error = f"store: {exc}"
                log.warning("destination %s: store unavailable: %s", self.spec.name, exc)
                await self._sleep(POLL_SECONDS)
            except Exception as exc:
                # A bug must not stop the relay for good: say so, wait, go on.
                log.exception("destination %s: relay failed", self.spec.name)
                self.status.last_error = str(exc) or type(exc).__name__
                await self._sleep(POLL_SECONDS)

    async def _claim(self) -> bool:
        start = (ORIGIN, ORIGIN)
        if self.spec.start == "latest":
            start = (await self._store.tail("events"), await self._store.tail("alerts"))
        state = await self._store.claim_destination(
            self.spec.name, self._owner, self._now_ms(), self._lease_ms, start
        )
        self._positions = {"events": state.events, "alerts": state.alerts}
        self.status.positions = dict(self._positions)
        self._generation = state.generation
        if state.owner != self._owner:
            self.status.state = "standby"
            return False
        if state.paused:
            self.status.state = "paused"
            return False
        return True

    async def _relay(self) -> None:
        """Relay while this replica holds the lease; returns when it should re-claim."""
        if not self._sink_started:
            await self._attempt(self._sink.start, [])
            self._sink_started = True
            await self._save()
        self.status.state = "relaying"
        while not self._stopping:
            self._wake.clear()
            full = False
            for kind in _KINDS:
                if (kind == "events" and not self.spec.events) or (
                    kind == "alerts" and not self.spec.alerts
                ):
                    continue
                full |= await self._page(kind)
            if full:
                continue
            # Caught up: what a backlog's last pages left unsaved is saved now,
            # and the lease is renewed every third of its length. A renewal
            # refused (lease lost, or paused or moved by an operator) raises
            # LeaseLost: the loop claims again and reloads the row.
            if (
                self._positions != self.status.positions
                or time.monotonic() - self._saved_at > self._lease_ms / 3000
            ):
                await self._save()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(POLL_SECONDS, self._lease_ms / 3000))

    async def _page(self, kind: Kind) -> bool:
        """One page of ``kind`` delivered and saved; whether it was full.

        While a full page is being delivered the next one is already read and
        rendered (the destination's acknowledgements are mostly waiting), so
        the relay keeps up with ingest.
        """
        after = self._positions[kind]
        ahead = self._ahead.pop(kind, None)
        busy = ahead is not None and ahead[0] == after
        if ahead is not None and busy:
            items, rows, through = await ahead[1]
        else:
            if ahead is not None:
                ahead[1].cancel()
            items, rows, through = await self._read(kind, after)
        full = rows >= self.spec.batch
        if full:
            self._ahead[kind] = (through, asyncio.ensure_future(self._read(kind, through)))
        if items:
            await self._check_unchanged(busy=busy)
            await self._deliver(items)
        if through != after:
            self._positions[kind] = through
            # Draining a backlog, the position is saved every CHECK_SECONDS, not
            # per page (a PostgreSQL commit each): a crash delivers at most that
            # much again, which the kinds make harmless.
            if not full or time.monotonic() - self._saved_at >= CHECK_SECONDS:
                await self._save()
        return full

    async def _read(self, kind: Kind, after: Position) -> tuple[list[Item], int, Position]:
        """The items of the page after ``after``, its row count and how far it settles."""
        if kind == "events":
            page = await self._store.read_events(after, None, EventQuery(), self.spec.batch)
            return event_items(page.rows, self.spec.event_names), len(page.rows), page.through
        apage = await self._store.read_alerts(after, AlertFilter(None), self.spec.batch)
        return alert_items(apage.rows, self.spec.alert_types), len(apage.rows), apage.through

    async def _check_unchanged(self, *, busy: bool) -> None:
        """LeaseLost if an operator paused or moved the destination. Asked before
        every delivery, but only every CHECK_SECONDS while draining a backlog (a
        read per page cost a tenth of the relay's time): a pause stops deliveries
        from the next page, or within CHECK_SECONDS under a backlog."""
        now = time.monotonic()
        if busy and now - self._checked < CHECK_SECONDS:
            return
        self._checked = now
        for state in await self._store.destination_states():
            if state.name == self.spec.name and (
                state.generation != self._generation or state.owner != self._owner
            ):
                raise LeaseLost

    async def _save(self) -> None:
        saved = await self._store.save_destination(
            self.spec.name,
            self._owner,
            self._generation,
            (self._positions["events"], self._positions["alerts"]),
            self._now_ms() + self._lease_ms,
        )
        if not saved:
            raise LeaseLost
        self._saved_at = time.monotonic()
        self.status.positions = dict(self._positions)

    # -- delivery ------------------------------------------------------------------

    async def _deliver(self, items: Sequence[Item]) -> None:
        async def send() -> None:
            await self._sink.deliver(items, timeout=self.spec.timeout)

        if await self._attempt(send, items):
            self.status.delivered += len(items)

    async def _attempt(self, call: Callable[[], Awaitable[None]], items: Sequence[Item]) -> bool:
        """``call()`` until it succeeds (True) or ``items`` are dead-lettered (False)."""
        retry = rejected = 0
        previous: float | None = None
        while True:
            wait: float | None = None
            try:
                permit = self.breaker.acquire()
            except BreakerOpen as exc:
                wait = exc.retry_after
                error: DeliveryError | None = None
            else:
                try:
                    await call()
                except Rejected as exc:
                    # The destination answered: it is up, this batch is the problem.
                    self.breaker.record_outcome(permit, failed=False)
                    rejected += 1
                    error = exc
                    if items and rejected >= self.spec.attempts:
                        await self._dead_letter(items, exc, rejected)
                        return False
                except Retryable as exc:
                    self.breaker.record_outcome(permit, failed=True)
                    error = exc
                else:
                    self.breaker.record_outcome(permit, failed=False)
                    self._settled()
                    return True
                self.status.retried += 1
                self.status.last_error = str(error)
            self.status.state = "retrying"
            self.status.breaker = self.breaker.state.value
            retry += 1
            if wait is None:
                wait = backoff(self._retry, retry, random.random(), previous)  # noqa: S311
                previous = wait
                if error is not None and error.retry_after:
                    wait = max(wait, error.retry_after)
            log.warning(
                "destination %s: delivery failed (%s); retrying in %.2fs",
                self.spec.name,
                self.status.last_error,
                wait,
            )
            await self._sleep(0 if is_testing() else wait)
            if self._stopping:
                raise asyncio.CancelledError
            await self._save()  # keeps the lease through an outage, or learns it is lost

    def _settled(self) -> None:
        self.status.state = "relaying"
        self.status.breaker = self.breaker.state.value
        self.status.last_error = ""

    async def _dead_letter(self, items: Sequence[Item], exc: DeliveryError, attempts: int) -> None:
        await self._store.add_dead_letters(
            [
                DeadLetter(
                    0,
                    self.spec.name,
                    i.kind,
                    i.place,
                    i.tenant,
                    i.key,
                    i.name,
                    i.payload,
                    i.committed_at_ms,
                    str(exc)[:2000],
                    attempts,
                    0,
                )
                for i in items
            ]
        )
        self.status.dead_lettered += len(items)
        log.error(
            "destination %s: %d rows refused %d times, moved to the dead letters: %s",
            self.spec.name,
            len(items),
            attempts,
            exc,
        )

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    # -- lag -----------------------------------------------------------------------

    async def _measure_lag(self) -> None:
        while True:
            await asyncio.sleep(2.0 if not is_testing() else 0.2)
            with contextlib.suppress(StoreError):
                await self.measure_lag()

    async def measure_lag(self) -> None:
        rows, oldest = 0, 0
        for kind in _KINDS:
            if (kind == "events" and not self.spec.events) or (
                kind == "alerts" and not self.spec.alerts
            ):
                continue
            count, first = await self._store.backlog(kind, self.status.positions[kind], LAG_CAP)
            rows += count
            if first and (not oldest or first < oldest):
                oldest = first
        self.status.lag_rows = rows
        self.status.lag_seconds = max(0.0, self._clock() - oldest / 1000) if oldest else 0.0
        self.status.breaker = self.breaker.state.value
