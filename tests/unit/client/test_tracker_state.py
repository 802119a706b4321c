"""The tracker's I/O-free accounting: memory (spills included) stays bounded, every event
ends in exactly one counted fate, every drop has a reason, and the metrics say so."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from eventwire.api import analytics_pb2
from eventwire.client import ClientMetrics, DroppedEvent, DropReason, TrackerStats
from eventwire.client.tracker.aio import Signals
from eventwire.client.tracker.config import Limits
from eventwire.client.tracker.framing import encode_event, frame_event
from eventwire.client.tracker.report import Reporter
from eventwire.client.tracker.session import Window
from eventwire.client.tracker.spill import Spiller
from eventwire.client.tracker.spool import Spool
from eventwire.client.tracker.state import Pipeline

LIMITS = Limits(max_queue_events=10, max_batch_events=4, max_batch_bytes=64 << 10)


def item(i: int) -> bytes:
    return frame_event(encode_event("e", "", None, 0, f"id-{i}"))


def settled(stats: TrackerStats) -> bool:
    return (
        stats.tracked + stats.recovered
        == stats.acked + stats.rejected + stats.dropped + stats.outstanding
        and stats.dropped == sum(stats.drops.values())
    )


def test_events_on_their_way_to_the_spool_still_count_as_memory() -> None:
    core = Pipeline(LIMITS)
    assert all(core.offer(item(i)).queued for i in range(10))
    refused = core.offer(item(10))
    assert (refused.queued, refused.wake, core.spill_requested) == (False, True, True)
    core.overflowed()
    events, _ = core.take_for_spill(include_unacked=False)
    assert len(events) == 10
    # Memory looks empty to the queue, but those ten are only in this process:
    # until their write returns, a crash loses them, so nothing new fits.
    assert core.stats(0, 0).memory_events == 10
    assert not core.offer(item(11)).queued
    core.overflowed()
    core.spilled(6, sum(map(len, events[:6])))
    assert core.stats(0, 0).memory_events == 4
    assert [core.offer(item(12 + i)).queued for i in range(7)] == [True] * 6 + [False]
    core.overflowed()
    # The four the spool refused go back to the front, within the same bound.
    core.put_back(events[6:], [(1, 4)])
    stats = core.stats(0, 0)
    assert stats.memory_events == 10
    assert (stats.spooled, stats.spilled) == (3 + 6, 6)
    assert list(core.pending)[:4] == events[6:]
    assert settled(stats)


def test_every_drop_is_counted_under_its_reason() -> None:
    core = Pipeline(LIMITS)
    core.count_drop(DropReason.CLOSED)
    epoch = core.offer(item(0)).epoch
    for i in range(1, 10):
        core.offer(item(i))
    core.refused(core.offer(item(10)).epoch, DropReason.SPOOL_FULL)
    core.recovered(5)
    core.drop_settled([(0, 2)], 2, DropReason.SPOOL_DAMAGED)
    dropped = core.drop_memory(DropReason.CLOSE_TIMEOUT)
    assert len(dropped) == 10
    assert epoch == 1
    stats = core.stats(3, 300)
    assert stats.drops == {
        **dict.fromkeys(DropReason.ALL, 0),
        DropReason.CLOSED: 1,
        DropReason.SPOOL_FULL: 1,
        DropReason.SPOOL_DAMAGED: 2,
        DropReason.CLOSE_TIMEOUT: 10,
    }
    assert (stats.dropped, stats.outstanding, stats.memory_events) == (14, 3, 0)
    assert settled(stats)


@dataclass
class Op:
    kind: str
    n: int


OPS = st.lists(
    st.builds(
        Op,
        st.sampled_from(["track", "batch", "ack", "spill", "write", "fail", "flush"]),
        st.integers(1, 6),
    ),
    max_size=80,
)


@settings(max_examples=200, deadline=None)
@given(OPS)
def test_memory_never_exceeds_its_bound_and_every_event_is_accounted(ops: list[Op]) -> None:
    core = Pipeline(LIMITS)
    spilling: list[tuple[list[bytes], list[tuple[int, int]]]] = []
    sent = 0
    for op in ops:
        if op.kind == "track":
            for _ in range(op.n):
                offer = core.offer(item(sent))
                sent += 1
                if not offer.queued:
                    core.overflowed()  # straight to the spool: on disk, not memory
        elif op.kind == "batch" and (batch := core.take_memory_batch()) is not None:
            core.mark_sent(batch, 0.0, 1)
        elif op.kind == "ack" and core.unacked:
            batch = next(iter(core.unacked.values()))
            ack = analytics_pb2.IngestAck(sequence=batch.seq, accepted=len(batch.events))
            assert core.acknowledge(ack) is batch
        elif op.kind == "spill":
            spilling.append(core.take_for_spill(include_unacked=op.n % 2 == 0))
        elif op.kind in ("write", "fail") and spilling:
            events, runs = spilling.pop(0)
            k = min(op.n, len(events)) if op.kind == "write" else 0
            core.spilled(k, sum(map(len, events[:k])))
            left: list[tuple[int, int]] = []
            todo = k
            for epoch, count in runs:
                skip = min(todo, count)
                todo -= skip
                if count - skip:
                    left.append((epoch, count - skip))
            core.put_back(events[k:], left)
        elif op.kind == "flush":
            core.new_epoch()
        stats = core.stats(0, 0)
        assert stats.memory_events <= LIMITS.max_queue_events
        assert stats.memory_bytes <= LIMITS.max_queue_bytes
        # Spooled events stay outstanding (the spool delivers them later).
        assert settled(stats)


def test_window_halves_on_pushback_and_grows_back() -> None:
    window = Window(8)
    window.pushed_back()
    window.pushed_back()
    assert window.size == 2
    for _ in range(2):
        window.acked()
    assert window.size == 3
    for _ in range(100):
        window.acked()
    assert window.size == 8


class Hooks:
    def __init__(self) -> None:
        self.drops: list[DroppedEvent] = []
        self.errors: list[Exception] = []


def spiller(tmp_path: Path | None, hooks: Hooks) -> tuple[Pipeline, Spiller]:
    core = Pipeline(LIMITS)
    reporter = Reporter(core, hooks.drops.append, hooks.errors.append)
    spool = None if tmp_path is None else Spool(tmp_path, max_bytes=64 << 10)
    return core, Spiller(spool, core, reporter, lambda: None)


def test_a_full_spool_drops_the_new_event_counts_it_and_says_so_once(tmp_path: Path) -> None:
    hooks = Hooks()
    core, spill = spiller(tmp_path, hooks)
    big = frame_event(encode_event("e", "", {"pad": "p" * 30_000}, 0, "big"))
    for i in range(5):
        # Memory is full (offer() refused it): straight to the 64 KiB spool, which takes two.
        spill.overflow(f"e{i}", big, core.admit())
    stats = core.stats(*spill.sizes())
    assert (stats.spooled, stats.spool_events, stats.drops[DropReason.SPOOL_FULL]) == (2, 2, 3)
    assert hooks.drops == [DroppedEvent(f"e{i}", DropReason.SPOOL_FULL) for i in (2, 3, 4)]
    assert len(hooks.errors) == 1, "one report per failure streak"
    assert stats.spool_errors == 3
    assert settled(stats)
    # A spill that does not fit goes back to memory: delayed, not dropped.
    core.offer(big)
    assert spill.write(*core.take_for_spill(include_unacked=False)) == 0
    assert (core.stats(0, 0).memory_events, core.stats(0, 0).dropped) == (1, 3)


def test_leftovers_without_a_spool_are_each_dropped_and_reported() -> None:
    hooks = Hooks()
    core, spill = spiller(None, hooks)
    ids = [f"id-{i}" for i in range(7)]
    for i in range(7):
        core.offer(item(i))
    spill.keep_leftovers()
    assert [d.event_id for d in hooks.drops] == ids
    assert core.stats(0, 0).drops[DropReason.CLOSE_TIMEOUT] == 7


def test_spilled_events_leave_memory_once_written(tmp_path: Path) -> None:
    hooks = Hooks()
    core, spill = spiller(tmp_path, hooks)
    for i in range(10):
        core.offer(item(i))
    assert spill.write(*core.take_for_spill(include_unacked=False)) == 10
    stats = core.stats(*spill.sizes())
    assert (stats.memory_events, stats.spool_events, stats.spooled, stats.spilled) == (
        0,
        10,
        10,
        10,
    )


class Watched:
    target = "t:1"

    def __init__(self, stats: TrackerStats) -> None:
        self.stats = stats


def test_metrics_export_drops_by_reason_and_spills() -> None:
    core = Pipeline(LIMITS)
    core.count_drop(DropReason.CLOSED)
    core.recovered(3)
    core.drop_settled([(0, 3)], 3, DropReason.SPOOL_DAMAGED)
    metrics = ClientMetrics()
    tracker = Watched(core.stats(0, 0))
    metrics.watch_tracker(tracker)
    metrics.watch_tracker(tracker)  # once is enough
    sample = metrics.registry.get_sample_value
    labels = {"target": "t:1"}
    assert sample("eventwire_tracker_dropped_total", labels) == 4
    by_reason = {
        reason: sample("eventwire_tracker_dropped_by_reason_total", {**labels, "reason": reason})
        for reason in DropReason.ALL
    }
    assert by_reason == {
        **dict.fromkeys(DropReason.ALL, 0.0),
        DropReason.CLOSED: 1.0,
        DropReason.SPOOL_DAMAGED: 3.0,
    }
    assert sample("eventwire_tracker_spilled_total", labels) == 0
    assert sample("eventwire_tracker_memory_bytes", labels) == 0


def test_an_fsync_asked_for_before_start_is_not_forgotten() -> None:
    signals = Signals()
    signals.sync_soon()  # an overflow write before the tracker had a loop
    signals.sync_soon()
    assert not signals.sync.is_set()
    loop = asyncio.new_event_loop()
    try:
        signals.bind(loop)
    finally:
        loop.close()
    assert signals.sync.is_set()
