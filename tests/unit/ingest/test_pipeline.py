"""Group commit with the real SQLite store."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from eventwire._errors import Unavailable
from eventwire.ingest.pipeline import IngestPipeline
from eventwire.store.base import AlertRow, CommitResult, EventQuery, EventRow, EventValues
from eventwire.store.quarantine import QuarantineRow
from eventwire.store.sqlite import SQLiteStore


class CountingStore(SQLiteStore):
    """The real store, counting its transactions."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.commits = 0

    async def commit(
        self,
        events: Sequence[Sequence[EventValues]],
        alerts: Sequence[AlertRow],
        quarantine: Sequence[QuarantineRow] = (),
    ) -> CommitResult:
        self.commits += 1
        return await super().commit(events, alerts, quarantine)


def row(event_id: str) -> EventRow:
    return EventRow("", event_id, "e", "", 1, 1, "{}")


async def test_concurrent_requests_share_transactions(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "e.db")
    await store.open()
    pipeline = IngestPipeline(store, max_batch=1000, max_pending=10_000)
    pipeline.start()
    try:
        results = await asyncio.gather(*(pipeline.add_events([row(f"id-{i}")]) for i in range(500)))
        assert results == [1] * 500
        assert store.commits < 500 / 5, f"{store.commits} commits for 500 requests"
        assert await pipeline.add_events([row("id-1"), row("new")]) == 1
    finally:
        await pipeline.close()
        await store.close()


async def test_batches_never_exceed_max_batch(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "e.db")
    await store.open()
    pipeline = IngestPipeline(store, max_batch=10, max_pending=1000)
    pipeline.start()
    try:
        await asyncio.gather(*(pipeline.add_events([row(f"b-{i}")]) for i in range(100)))
        assert store.commits >= 10
    finally:
        await pipeline.close()
        await store.close()


async def test_close_commits_what_was_queued_and_refuses_more(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "e.db")
    await store.open()
    pipeline = IngestPipeline(store)
    pipeline.start()
    pending = [asyncio.ensure_future(pipeline.add_events([row(f"c-{i}")])) for i in range(50)]
    await asyncio.sleep(0)  # let them enqueue
    await pipeline.close(timeout=10)
    assert [await p for p in pending] == [1] * 50
    with pytest.raises(Unavailable):
        await pipeline.add_events([row("late")])
    await store.close()


def test_bounds_are_checked() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        IngestPipeline(SQLiteStore("unused.db"), max_batch=10, max_pending=5)


async def test_a_lone_caller_commits_at_once_in_its_own_task(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "e.db")
    await store.open()
    # The longest wait allowed: a lone caller that lingered would be seen waiting.
    pipeline = IngestPipeline(store, max_delay=1.0)
    pipeline.start()
    try:
        for i in range(20):
            assert await pipeline.add_events([row(f"lone-{i}")]) == 1
        assert store.commits == 20
        assert pipeline.led_commits == 20
        assert pipeline.gatherings == 0
    finally:
        await pipeline.close()
        await store.close()


class GatedStore(SQLiteStore):
    """The real store, whose every commit waits until the test releases it."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.batches: list[int] = []
        """Requests per commit, in the order the commits began."""
        self._entered = asyncio.Event()
        self._gate = asyncio.Event()

    async def commit(
        self,
        events: Sequence[Sequence[EventValues]],
        alerts: Sequence[AlertRow],
        quarantine: Sequence[QuarantineRow] = (),
    ) -> CommitResult:
        gate = self._gate = asyncio.Event()
        self.batches.append(len(events) + len(alerts))
        self._entered.set()
        await gate.wait()
        return await super().commit(events, alerts, quarantine)

    async def held(self) -> int:
        """Wait for a commit to begin (it is then held); return its request count."""
        await asyncio.wait_for(self._entered.wait(), 30)
        self._entered.clear()
        return self.batches[-1]

    def release(self) -> None:
        """Let the held commit go on."""
        self._gate.set()


async def until(condition: Callable[[], bool]) -> None:
    """Run the loop's other tasks until ``condition`` holds: counted in turns, not time."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    pytest.fail("condition never held")


async def test_steady_concurrent_callers_are_gathered_into_shared_commits(tmp_path: Path) -> None:
    store = GatedStore(tmp_path / "e.db")
    await store.open()
    # The longest wait allowed, so that the gathering below outlasts the test's own
    # turns of the loop on any machine: what is checked is who commits with whom.
    pipeline = IngestPipeline(store, max_delay=1.0)
    pipeline.start()
    calls: list[asyncio.Task[int]] = []

    def call(name: str) -> None:
        calls.append(asyncio.create_task(pipeline.add_events([row(name)])))

    try:
        call("first")  # a lone caller: its commit begins at once
        assert await store.held() == 1
        for i in range(7):  # arrive while the first commit holds the store
            call(f"queued-{i}")
        await until(lambda: pipeline.pending == 8)
        store.release()
        assert await store.held() == 7  # all of them in the next commit
        # Seven arrived in one round: more are expected per round now. One comes
        # while that commit runs; the writer then waits for the others instead of
        # committing it alone.
        call("gathered-0")
        await until(lambda: pipeline.pending == 8)
        store.release()
        await until(lambda: pipeline.gatherings == 1)
        assert store.batches == [1, 7]
        call("gathered-1")
        call("gathered-2")
        assert await store.held() == 3
        store.release()
        assert await asyncio.gather(*calls) == [1] * 11
        assert store.batches == [1, 7, 3]
        assert pipeline.gatherings == 1
        assert await store.count_events("", EventQuery()) == 11
    finally:
        store.release()
        await pipeline.close()
        await store.close()


async def test_no_gathering_when_the_delay_is_zero(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "e.db")
    await store.open()
    pipeline = IngestPipeline(store, max_delay=0)
    pipeline.start()
    try:
        await asyncio.gather(*(pipeline.add_events([row(f"z-{i}")]) for i in range(100)))
        assert pipeline.gatherings == 0
    finally:
        await pipeline.close()
        await store.close()


def test_the_delay_is_bounded() -> None:
    with pytest.raises(ValueError, match="max_delay"):
        IngestPipeline(SQLiteStore("unused.db"), max_delay=2.0)
