"""Each file that holds acknowledged rows (database, -wal, -shm) deleted or replaced
under load, then a SIGKILL: every acknowledged event is there after the restart."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import pytest

from eventwire.api import analytics_pb2, analytics_pb2_grpc
from eventwire.testing._process import ServerProcess
from tests.conftest import CHANNEL_OPTIONS
from tests.support.probes import NOT_SERVING, SERVING, health, poll

WRITERS = 8


def fault(path: Path, how: str) -> None:
    if how == "deleted":
        path.unlink()
    else:  # a restore or a careless copy: another file renamed over it
        other = path.with_name(path.name + ".other")
        other.write_bytes(os.urandom(64 * 1024))
        other.replace(path)


async def count_events(address: str) -> int:
    async with grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS) as ch:
        stub = analytics_pb2_grpc.AnalyticsServiceStub(ch)
        reply = await stub.CountEvents(analytics_pb2.CountEventsRequest(), timeout=30)
        return int(reply.count)


@pytest.mark.parametrize(
    ("suffix", "how"),
    [
        ("-wal", "deleted"),
        ("-wal", "replaced"),
        ("-shm", "deleted"),
        ("-shm", "replaced"),
        ("", "deleted"),
    ],
)
async def test_every_acknowledged_event_survives_a_file_gone_and_a_sigkill(
    tmp_path: Path, suffix: str, how: str
) -> None:
    db = tmp_path / "events.db"
    proc = ServerProcess("--store", f"sqlite:///{db}", http_address="").start()
    acknowledged = 0
    refusals: list[grpc.StatusCode] = []
    try:
        async with grpc.aio.insecure_channel(proc.address, options=CHANNEL_OPTIONS) as ch:
            stub = analytics_pb2_grpc.AnalyticsServiceStub(ch)
            stop = asyncio.Event()

            async def write() -> None:
                nonlocal acknowledged
                while not stop.is_set():
                    try:
                        await stub.TrackEvent(analytics_pb2.TrackEventRequest(event_name="e"))
                    except grpc.aio.AioRpcError as exc:
                        refusals.append(exc.code())
                        await asyncio.sleep(0.01)
                    else:
                        acknowledged += 1

            writers = [asyncio.create_task(write()) for _ in range(WRITERS)]
            try:
                await poll(lambda: _true(acknowledged >= 300), "300 acknowledged")
                fault(Path(f"{db}{suffix}"), how)
                # Writing goes on until the server refuses, and a while after.
                await poll(lambda: _true(len(refusals) >= 20), "writes refused")
                await poll(_not_serving(ch), "health NOT_SERVING")
            finally:
                stop.set()
                await asyncio.gather(*writers)
        assert set(refusals) == {grpc.StatusCode.UNAVAILABLE}
        # The log is read on another thread, which a busy machine may delay.
        await poll(lambda: _true(bool(criticals(proc))), "a CRITICAL line")
        lost = criticals(proc)
        assert len(lost) == 1
        assert f"{db}{suffix}" in lost[0]
        proc.kill()  # no drain, no checkpoint at close
        proc.restart()
        assert await count_events(proc.address) == acknowledged
    finally:
        proc.kill()


def criticals(proc: ServerProcess) -> list[str]:
    return [str(line["msg"]) for line in list(proc.logs) if line.get("level") == "critical"]


async def _true(value: bool) -> bool:
    return value


def _not_serving(ch: grpc.aio.Channel) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await health(ch) == NOT_SERVING

    return check


async def test_a_truncated_wal_is_refused_before_anything_is_written_past_it(
    tmp_path: Path,
) -> None:
    db = tmp_path / "events.db"
    with ServerProcess("--store", f"sqlite:///{db}", http_address="") as proc:
        async with grpc.aio.insecure_channel(proc.address, options=CHANNEL_OPTIONS) as ch:
            stub = analytics_pb2_grpc.AnalyticsServiceStub(ch)
            for _ in range(20):
                await stub.TrackEvent(analytics_pb2.TrackEventRequest(event_name="e"))
            os.truncate(f"{db}-wal", 0)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.TrackEvent(analytics_pb2.TrackEventRequest(event_name="e"), timeout=10)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "truncated" in (refused.value.details() or "")
            await poll(_not_serving(ch), "health NOT_SERVING")
        await poll(lambda: _true(bool(criticals(proc))), "a CRITICAL line")
        lost = criticals(proc)
        assert len(lost) == 1
        assert f"{db}-wal" in lost[0]
    # Nothing was written after the hole.
    assert await asyncio.to_thread(os.path.getsize, f"{db}-wal") == 0


async def test_checkpoints_and_an_online_backup_are_not_faults(tmp_path: Path) -> None:
    """SQLite rewrites its WAL from the start after each checkpoint, and the
    documented backup opens and closes the files under the server: neither is
    a file gone."""
    db = tmp_path / "events.db"
    big = analytics_pb2.TrackEventRequest(
        event_name="big", properties={f"k{j}": "x" * 4000 for j in range(4)}
    )
    with ServerProcess("--store", f"sqlite:///{db}", http_address="") as proc:
        async with grpc.aio.insecure_channel(proc.address, options=CHANNEL_OPTIONS) as ch:
            stub = analytics_pb2_grpc.AnalyticsServiceStub(ch)
            sizes: list[int] = []
            for i in range(600):  # ~10 MB: autocheckpoints every ~4 MB of WAL
                await stub.TrackEvent(big)
                sizes.append(await asyncio.to_thread(os.path.getsize, f"{db}-wal"))
                if i == 300:
                    await asyncio.to_thread(_backup, db, tmp_path / "backup.db")
            assert await health(ch) == SERVING
            counted = await stub.CountEvents(analytics_pb2.CountEventsRequest(), timeout=30)
            assert counted.count == 600
        assert criticals(proc) == []
    # The WAL was checkpointed and reused (it stopped growing), never shrunk.
    assert max(sizes) < 600 * 16_000, max(sizes)
    assert sizes == sorted(sizes)
    with contextlib.closing(sqlite3.connect(tmp_path / "backup.db")) as backup:
        assert backup.execute("SELECT count(*) FROM events").fetchone()[0] == 301


def _backup(db: Path, to: Path) -> None:
    with (
        contextlib.closing(sqlite3.connect(db)) as source,
        contextlib.closing(sqlite3.connect(to)) as target,
    ):
        source.backup(target)
