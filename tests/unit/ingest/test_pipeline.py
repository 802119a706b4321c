"""Group commit with the real SQLite store."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from eventwire._errors import Unavailable
from eventwire.ingest.pipeline import IngestPipeline
from eventwire.store.base import AlertRow, CommitResult, EventRow
from eventwire.store.sqlite import SQLiteStore


class CountingStore(SQLiteStore):
    """The real store, counting its transactions."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.commits = 0

    async def commit(
        self, events: Sequence[Sequence[EventRow]], alerts: Sequence[AlertRow]
    ) -> CommitResult:
        self.commits += 1
        return await super().commit(events, alerts)


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
