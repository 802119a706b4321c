"""The tracker against a real in-process server: acks, flush/close, rejections, drops, pushback."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import threading
import time
import uuid
from functools import partial
from pathlib import Path

from eventwire.client import (
    AnalyticsClient,
    ClientConfig,
    ClientMetrics,
    DroppedEvent,
    DropReason,
    EventRejectedError,
    EventwireError,
    ResourceExhaustedError,
    RpcError,
    SyncTracker,
    Tracker,
    TrackerConfig,
)
from eventwire.security.auth import hash_token
from eventwire.testing import FaultProxy, running_server
from tests.support.tracker import stored_ids, until

# Nothing listens on port 1 (and nobody unprivileged can bind it): a proxy
# pointed there resets every connection, which is what a dead server looks like.
NOWHERE = "127.0.0.1:1"


def acked_at_least(tracker: Tracker, n: int) -> bool:
    return tracker.stats.acked >= n


def settled(tracker: Tracker | SyncTracker) -> bool:
    s = tracker.stats
    return s.tracked + s.recovered == s.acked + s.rejected + s.dropped + s.outstanding


async def test_flush_returns_once_every_event_is_stored(db: Path, db_url: str) -> None:
    async with (
        running_server(store=db_url) as srv,
        Tracker(srv.address, TrackerConfig(flush_interval=30)) as tracker,
    ):
        ids = [
            tracker.track("view", user_id=f"u{i}", properties={"i": str(i)}) for i in range(2500)
        ]
        # The flush interval is far away: only flush() can make the last partial batch go.
        assert await tracker.flush(timeout=20)
        stored = stored_ids(db)
        assert sorted(stored) == sorted(ids)
        stats = tracker.stats
        assert (stats.tracked, stats.acked, stats.accepted, stats.duplicate) == (
            2500,
            2500,
            2500,
            0,
        )
        assert stats.outstanding == 0
        assert stats.batches_acked == 3  # 1000 + 1000 + 500
        assert settled(tracker)
    for event_id in ids[:10]:
        assert uuid.UUID(event_id).version == 7


async def test_a_lone_event_goes_out_after_the_flush_interval(db: Path, db_url: str) -> None:
    config = TrackerConfig(flush_interval=0.1, stream_idle_timeout=60)
    async with running_server(store=db_url) as srv, Tracker(srv.address, config) as tracker:
        for round_ in range(1, 4):
            # Neither a full batch nor a flush(): only the interval can send these.
            event_id = tracker.track("lonely")
            await until(partial(acked_at_least, tracker, round_), 5, "the interval to send it")
            assert event_id in stored_ids(db)


async def test_events_keep_their_time_and_content(db: Path, db_url: str) -> None:
    async with running_server(store=db_url) as srv, Tracker(srv.address) as tracker:
        before = time.time_ns() // 1_000_000
        event_id = tracker.track("signup", user_id="ada", properties={"plan": "pro"})
        explicit = tracker.track("old", timestamp=1_700_000_000_000, event_id="my-own-id")
        assert explicit == "my-own-id"
        assert await tracker.flush(timeout=10)
    with sqlite3.connect(db) as conn:
        rows = dict(
            (r[0], r[1:])
            for r in conn.execute("SELECT event_id, event_name, user_id, ts FROM events")
        )
    assert rows[event_id][:2] == ("signup", "ada")
    # Stamped when tracked, not when the server got it.
    assert before <= rows[event_id][2] <= time.time_ns() // 1_000_000
    assert rows["my-own-id"] == ("old", "", 1_700_000_000_000)


async def test_close_waits_for_acks_and_later_tracks_are_dropped(db: Path, db_url: str) -> None:
    drops: list[DroppedEvent] = []
    async with running_server(store=db_url) as srv:
        tracker = Tracker(srv.address, TrackerConfig(flush_interval=60), on_drop=drops.append)
        await tracker.start()
        ids = {tracker.track("view") for _ in range(1234)}
        assert await tracker.close(timeout=20)
        # Checked right after close() returned: nothing was still on its way.
        assert set(stored_ids(db)) == ids
        late = tracker.track("too-late")
        assert drops == [DroppedEvent(late, DropReason.CLOSED)]
        assert tracker.stats.dropped == 1
        assert settled(tracker)


async def test_flush_times_out_while_unreachable_then_delivers(db: Path, db_url: str) -> None:
    errors: list[EventwireError] = []
    async with (
        running_server(store=db_url) as srv,
        FaultProxy(NOWHERE) as proxy,
        Tracker(proxy.address, TrackerConfig(flush_interval=0.05), on_error=errors.append) as t,
    ):
        ids = {t.track("view") for _ in range(300)}
        started = time.monotonic()
        assert not await t.flush(timeout=0.5)
        assert time.monotonic() - started < 3
        assert errors, "connection failures are reported to on_error"
        assert t.stats.acked == 0
        proxy.set_upstream(srv.address)
        assert await t.flush(timeout=20)
        assert set(stored_ids(db)) == ids
        assert t.stats.dropped == 0


async def test_rejected_events_are_reported_and_never_retried(db: Path, db_url: str) -> None:
    errors: list[EventwireError] = []
    async with (
        running_server(store=db_url) as srv,
        Tracker(srv.address, on_error=errors.append) as tracker,
    ):
        good = [tracker.track("view") for _ in range(5)]
        blank = tracker.track("")  # event_name is required
        seconds = tracker.track("view", timestamp=946_684_799)  # seconds, before 2000
        oversize = tracker.track("huge", properties={f"k{i}": "v" * 8000 for i in range(5)})
        assert await tracker.flush(timeout=10)
        stats = tracker.stats
    rejected = {e.event_id: e for e in errors if isinstance(e, EventRejectedError)}
    assert set(rejected) == {blank, seconds, oversize}
    assert rejected[blank].violations[0][0].endswith("event_name")
    assert "32768" in str(rejected[oversize])
    assert (stats.tracked, stats.acked, stats.rejected) == (8, 5, 3)
    # The two invalid events went out once, in the one batch, and never again.
    assert (stats.sent, stats.batches_sent) == (7, 1)
    assert sorted(stored_ids(db)) == sorted(good)


async def test_without_a_spool_a_full_memory_drops_new_events_only(db: Path, db_url: str) -> None:
    drops: list[DroppedEvent] = []
    config = TrackerConfig(max_queue_events=1000, max_batch_events=100, flush_interval=0.05)
    async with (
        running_server(store=db_url) as srv,
        FaultProxy(NOWHERE) as proxy,
        Tracker(proxy.address, config, on_drop=drops.append) as tracker,
    ):
        ids = [tracker.track("view") for _ in range(1300)]
        assert [d.event_id for d in drops] == ids[1000:]
        assert {d.reason for d in drops} == {DropReason.MEMORY_FULL}
        assert tracker.stats.memory_events == 1000
        proxy.set_upstream(srv.address)
        assert await tracker.flush(timeout=20)
        assert sorted(stored_ids(db)) == sorted(ids[:1000])
        stats = tracker.stats
        assert (stats.tracked, stats.acked, stats.dropped) == (1300, 1000, 300)
        assert stats.outstanding == 0


async def test_pushback_pauses_the_pipeline(db: Path, db_url: str) -> None:
    refusals: list[tuple[float, int]] = []

    def on_error(exc: EventwireError) -> None:
        if isinstance(exc, ResourceExhaustedError):
            refusals.append((time.monotonic(), exc.pushback_ms or 0))

    config = TrackerConfig(max_batch_events=5, max_queue_events=100, flush_interval=0.01)
    async with (
        running_server(store=db_url, max_pending_events=5, max_batch_events=5) as srv,
        Tracker(srv.address, config, on_error=on_error) as tracker,
    ):
        # Another writer holds the database: commits stall, the server's queue fills.
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            ids = [tracker.track("burst") for _ in range(40)]
            await until(lambda: bool(refusals), 10, "a RESOURCE_EXHAUSTED refusal")
            refused_at, pushback_ms = refusals[0]
            streams = tracker.stats.streams
            await until(lambda: tracker.stats.streams > streams, 10, "the next stream")
            paused = time.monotonic() - refused_at
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert pushback_ms > 0
        assert paused >= pushback_ms / 1000 * 0.95
        assert tracker.stats.pushbacks >= 1
        # Pausing alone would resend the same burst into the same full queue
        # forever; the shrunken window lets it drain.
        assert await tracker.flush(timeout=30)
    assert sorted(stored_ids(db)) == sorted(ids)


def test_sync_tracker_from_many_threads(tmp_path: Path) -> None:
    db = tmp_path / "events.db"

    async def serve(ready: threading.Event, stop: asyncio.Event, box: list[str]) -> None:
        async with running_server(store=f"sqlite:///{db}") as srv:
            box.append(srv.address)
            ready.set()
            await stop.wait()

    ready = threading.Event()
    box: list[str] = []
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    server = threading.Thread(target=loop.run_until_complete, args=(serve(ready, stop, box),))
    server.start()
    try:
        assert ready.wait(20)
        ids: list[str] = []
        lock = threading.Lock()
        with SyncTracker(box[0], TrackerConfig(flush_interval=0.05)) as tracker:

            def work() -> None:
                mine = [tracker.track("thread") for _ in range(500)]
                with lock:
                    ids.extend(mine)

            workers = [threading.Thread(target=work) for _ in range(4)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            assert tracker.flush(timeout=20)
            assert sorted(stored_ids(db)) == sorted(ids)
            assert tracker.stats.acked == 2000
        assert tracker.close() is True  # closing twice answers the same
    finally:
        loop.call_soon_threadsafe(stop.set)
        server.join(20)
        loop.close()


async def test_a_token_is_sent_and_picks_the_tenant(tmp_path: Path, db: Path, db_url: str) -> None:
    secret = secrets.token_urlsafe(24)
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{hash_token(secret)} acme write,read\n")
    errors: list[EventwireError] = []
    async with running_server(store=db_url, auth_tokens=str(tokens)) as srv:
        async with Tracker(srv.address, token=secret) as tracker:
            ids = [tracker.track("authed") for _ in range(50)]
            assert await tracker.flush(timeout=10)
        config = TrackerConfig(flush_interval=0.02, max_retry_delay=0.1)
        anonymous = Tracker(srv.address, config, on_error=errors.append)
        await anonymous.start()
        anonymous.track("refused")
        # Not delivered, and not dropped either: a missing token is fixed by
        # configuration, and the event waits for it (memory-only here, so
        # close() finally reports it dropped).
        assert not await anonymous.flush(timeout=0.5)
        assert (anonymous.stats.acked, anonymous.stats.dropped) == (0, 0)
        assert not await anonymous.close(timeout=0.1)
        assert anonymous.stats.dropped == 1
    assert any(isinstance(e, RpcError) and e.status_code.name == "UNAUTHENTICATED" for e in errors)
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT tenant, event_id FROM events").fetchall()
    assert sorted(rows) == sorted(("acme", i) for i in ids)


async def test_the_channel_takes_one_client_config(tmp_path: Path, db: Path, db_url: str) -> None:
    secret = secrets.token_urlsafe(24)
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{hash_token(secret)} acme write,read\n")
    metrics = ClientMetrics()
    # The same config an AnalyticsClient would take: the tracker uses its token,
    # breaker and metrics for its one stream (and no deadline, no retries).
    config = ClientConfig(token=secret, metrics=metrics, timeout=0.001)
    async with running_server(store=db_url, auth_tokens=str(tokens)) as srv:
        async with AnalyticsClient(srv.address, config, timeout=5) as client:
            await client.track_event("direct", event_id="direct-1")

        def track() -> tuple[list[str], bool]:
            with SyncTracker(srv.address, TrackerConfig(flush_interval=0.02), client=config) as t:
                assert t.client is config
                ids = [t.track("tracked") for _ in range(30)]
                return ids, t.flush(timeout=10)

        ids, flushed = await asyncio.to_thread(track)
    assert flushed
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT tenant, event_id FROM events").fetchall()
    assert sorted(rows) == sorted(("acme", i) for i in [*ids, "direct-1"])
    sample = metrics.registry.get_sample_value
    # Watched from the start, under its target, though nobody called watch_tracker().
    assert sample("eventwire_tracker_acked_total", {"target": srv.address}) == 30
    assert sample("eventwire_client_breaker_state", {"breaker": srv.address}) == 0
