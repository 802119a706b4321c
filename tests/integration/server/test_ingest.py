"""Acknowledged batch ingestion: TrackEvents and the bidi IngestEvents stream."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TypeAlias

import grpc
import pytest

from eventwire import _status
from eventwire.api import analytics_pb2, analytics_pb2_grpc
from eventwire.testing import running_server

Analytics: TypeAlias = "analytics_pb2_grpc.AnalyticsServiceAsyncStub"


def batch(sequence: int, n: int, prefix: str = "b") -> analytics_pb2.EventBatch:
    return analytics_pb2.EventBatch(
        sequence=sequence,
        events=[
            analytics_pb2.TrackEventRequest(event_name="view", event_id=f"{prefix}-{sequence}-{i}")
            for i in range(n)
        ],
    )


def stored_ids(db_url: str) -> set[str]:
    with sqlite3.connect(db_url.removeprefix("sqlite:///")) as conn:
        return {row[0] for row in conn.execute("SELECT event_id FROM events")}


async def test_track_events_stores_valid_events_and_reports_the_rest(
    analytics: Analytics, db_url: str
) -> None:
    req = batch(7, 4)
    req.events[1].event_name = ""
    req.events[3].timestamp = 946_684_799  # seconds, before 2000
    ack = await analytics.TrackEvents(req)
    assert (ack.sequence, ack.accepted, ack.duplicates, ack.rejected) == (7, 2, 0, 2)
    assert [(r.index, r.event_id) for r in ack.rejections] == [(1, "b-7-1"), (3, "b-7-3")]
    assert ack.rejections[0].violations[0].field == "events[1].event_name"
    assert "seconds" in ack.rejections[1].violations[0].description
    assert stored_ids(db_url) == {"b-7-0", "b-7-2"}

    again = await analytics.TrackEvents(req)
    assert (again.accepted, again.duplicates, again.rejected) == (0, 2, 2)


async def test_oversize_batch_is_invalid_argument(analytics: Analytics) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await analytics.TrackEvents(batch(1, 10_001))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _status.field_violations(info.value)[0][0] == "events"


async def test_every_batch_of_a_stream_is_acked_once_committed(
    analytics: Analytics, db_url: str
) -> None:
    batches = [batch(seq, 50) for seq in range(1, 21)]
    call = analytics.IngestEvents(iter(batches))
    acks = [ack async for ack in call]
    assert sorted(a.sequence for a in acks) == list(range(1, 21))
    assert all((a.accepted, a.duplicates, a.rejected) == (50, 0, 0) for a in acks)
    assert await call.code() == grpc.StatusCode.OK
    assert len(stored_ids(db_url)) == 1000


async def test_resending_a_stream_is_acknowledged_without_storing_twice(
    analytics: Analytics, db_url: str
) -> None:
    batches = [batch(seq, 10) for seq in range(5)]
    first = [a async for a in analytics.IngestEvents(iter(batches[:3]))]
    assert sum(a.accepted for a in first) == 30
    # The client lost its stream and resends everything from the start.
    resent = [a async for a in analytics.IngestEvents(iter(batches))]
    assert sum(a.accepted for a in resent) == 20
    assert sum(a.duplicates for a in resent) == 30
    assert len(stored_ids(db_url)) == 50


async def test_empty_ingest_stream_ends_ok(analytics: Analytics) -> None:
    call = analytics.IngestEvents(iter([]))
    assert [a async for a in call] == []
    assert await call.code() == grpc.StatusCode.OK


async def test_acks_arrive_while_the_stream_stays_open(analytics: Analytics) -> None:
    call = analytics.IngestEvents()
    for seq in range(3):
        await call.write(batch(seq, 5))
        ack = await asyncio.wait_for(call.read(), timeout=10)
        assert isinstance(ack, analytics_pb2.IngestAck)
        assert (ack.sequence, ack.accepted) == (seq, 5)
    await call.done_writing()
    assert await call.read() is grpc.aio.EOF


async def test_cancelled_stream_leaves_nothing_half_acknowledged(
    analytics: Analytics, db_url: str
) -> None:
    call = analytics.IngestEvents()
    acked: list[analytics_pb2.IngestAck] = []
    for seq in range(4):
        await call.write(batch(seq, 25, prefix="c"))
    for _ in range(2):
        ack = await call.read()
        assert isinstance(ack, analytics_pb2.IngestAck)
        acked.append(ack)
    call.cancel()
    await analytics.TrackEvents(batch(99, 1, prefix="after"))
    stored = stored_ids(db_url)
    for ack in acked:  # every acknowledged batch is stored, whole
        assert {f"c-{ack.sequence}-{i}" for i in range(25)} <= stored
    by_batch = {seq: sum(f"c-{seq}-{i}" in stored for i in range(25)) for seq in range(4)}
    assert set(by_batch.values()) <= {0, 25}  # a batch is stored entirely or not at all


async def test_an_invalid_batch_ends_the_stream_with_its_status(analytics: Analytics) -> None:
    call = analytics.IngestEvents(iter([batch(1, 3), batch(2, 10_001)]))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for _ in call:
            pass
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_overload_mid_stream_ends_it_with_pushback_not_internal(tmp_path: Path) -> None:
    db = tmp_path / "e.db"
    async with (
        running_server(store=f"sqlite:///{db}", max_pending_events=20, max_batch_events=10) as srv,
        grpc.aio.insecure_channel(srv.address) as ch,
    ):
        stub = analytics_pb2_grpc.AnalyticsServiceStub(ch)
        warm = [a async for a in stub.IngestEvents(iter([batch(0, 10, prefix="w")]))]
        assert warm[0].accepted == 10
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # commits stall: the queue fills up
        finished = asyncio.Event()

        async def requests() -> AsyncIterator[analytics_pb2.EventBatch]:
            # The third batch overflows the queue (20 rows pending). Then the
            # client writes nothing more: grpc.aio's client turns a write that
            # races the end of the call into its own INTERNAL ("Internal error
            # from Core"), hiding the status the server sent.
            for seq in range(1, 4):
                yield batch(seq, 10)
            await finished.wait()

        try:
            call = stub.IngestEvents(requests())
            with pytest.raises(grpc.aio.AioRpcError) as info:
                async for _ in call:
                    pass
        finally:
            finished.set()
            blocker.execute("ROLLBACK")
            blocker.close()
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    pushback = dict(info.value.trailing_metadata() or ()).get("grpc-retry-pushback-ms")
    assert pushback is not None
    assert int(str(pushback)) > 0
