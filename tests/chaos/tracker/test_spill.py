"""The tracker's spool in use: outages, memory overflow, the next run, a full disk."""

from __future__ import annotations

from pathlib import Path

from eventwire.client import (
    DroppedEvent,
    DropReason,
    EventwireError,
    SpoolFullError,
    Tracker,
    TrackerConfig,
)
from eventwire.testing import FaultProxy, running_server
from tests.support.tracker import stored_ids, until

NOWHERE = "127.0.0.1:1"


async def test_an_outage_spills_and_the_next_run_delivers(
    tmp_path: Path, db: Path, db_url: str
) -> None:
    spool_dir = tmp_path / "spool"
    config = TrackerConfig(spool_dir=spool_dir, flush_interval=0.05, max_retry_delay=0.2)
    async with FaultProxy(NOWHERE) as proxy:
        tracker = Tracker(proxy.address, config)
        await tracker.start()
        ids = [tracker.track("offline", properties={"n": str(i)}) for i in range(3000)]
        # Unreachable: whatever memory holds goes to disk, where a crash cannot take it.
        await until(
            lambda: tracker.stats.spool_events == 3000 and tracker.stats.memory_events == 0,
            20,
            "every event in the spool",
        )
        assert not await tracker.close(timeout=0.3)
        stats = tracker.stats
        assert (stats.spooled, stats.acked, stats.dropped, stats.outstanding) == (3000, 0, 0, 3000)
    assert list(spool_dir.glob("lane-*/*.seg"))

    async with running_server(store=db_url) as srv, Tracker(srv.address, config) as again:
        assert again.stats.recovered == 3000
        assert await again.flush(timeout=20)
        assert sorted(stored_ids(db)) == sorted(ids)
        assert again.stats.acked == 3000
    assert not list(spool_dir.glob("lane-*/*.seg")), "delivered segments are deleted"


async def test_memory_overflow_goes_through_the_spool(
    tmp_path: Path, db: Path, db_url: str
) -> None:
    config = TrackerConfig(
        spool_dir=tmp_path / "spool",
        max_queue_events=1000,
        max_batch_events=200,
        flush_interval=0.05,
    )
    async with (
        running_server(store=db_url) as srv,
        FaultProxy(srv.address) as proxy,
        Tracker(proxy.address, config) as tracker,
    ):
        proxy.set_faults(latency=0.05)
        ids = [tracker.track("burst") for _ in range(10_000)]
        assert tracker.stats.memory_events <= 1000
        assert await tracker.flush(timeout=60)
        stats = tracker.stats
        assert stats.spooled > 0
        assert (stats.acked, stats.dropped, stats.outstanding) == (10_000, 0, 0)
    stored = stored_ids(db)
    assert len(stored) == len(set(stored)) == 10_000
    assert set(stored) == set(ids)


async def test_a_full_disk_drops_only_new_events_and_says_so(
    small_disk: Path, db: Path, db_url: str
) -> None:
    errors: list[EventwireError] = []
    drops: list[DroppedEvent] = []
    config = TrackerConfig(
        spool_dir=small_disk / "spool",
        max_queue_events=2000,
        max_batch_events=500,
        flush_interval=0.05,
        max_retry_delay=0.2,
    )
    async with (
        running_server(store=db_url) as srv,
        FaultProxy(NOWHERE) as proxy,
        Tracker(proxy.address, config, on_error=errors.append, on_drop=drops.append) as tracker,
    ):
        # About 300 bytes each: 2 MiB of disk holds well under 10,000 of them.
        padding = {"pad": "p" * 250}
        ids = [tracker.track("big", properties=padding) for _ in range(12_000)]
        await until(lambda: bool(drops), 20, "the spool to fill the disk")
        full = [e for e in errors if isinstance(e, SpoolFullError)]
        assert full, "a full disk is reported to on_error"
        assert "no space" in str(full[0])
        assert len(full) == 1, "reported once per failure streak, not once per event"
        assert {d.reason for d in drops} == {DropReason.SPOOL_FULL}
        dropped = {d.event_id for d in drops}
        # The policy: the new event is refused, nothing already accepted is given up.
        assert dropped == set(ids[len(ids) - len(dropped) :])

        proxy.set_upstream(srv.address)
        assert await tracker.flush(timeout=60)
        stats = tracker.stats
        assert stats.spool_errors >= 1
        assert stats.dropped == len(dropped)
        assert stats.acked + stats.dropped == stats.tracked == 12_000
        assert stats.outstanding == 0
    stored = stored_ids(db)
    assert len(stored) == len(set(stored))
    assert set(stored) == set(ids) - dropped
