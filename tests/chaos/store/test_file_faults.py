"""A database deleted, replaced, made immutable or dropped while serving: refused, not lost."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sqlite3
import subprocess
import urllib.request
from collections.abc import Awaitable, Iterator
from pathlib import Path

import grpc
import psycopg
import pytest

from eventwire.api import analytics_pb2, analytics_pb2_grpc
from eventwire.testing._process import ServerProcess
from tests.conftest import ADMIN_URL, CHANNEL_OPTIONS, fill_disk, tmpfs, with_database
from tests.support.probes import NOT_SERVING, SERVING, health, poll


def event(name: str = "e") -> analytics_pb2.TrackEventRequest:
    return analytics_pb2.TrackEventRequest(event_name=name)


def scrape(proc: ServerProcess, name: str) -> float:
    with urllib.request.urlopen(f"http://{proc.metrics_address}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + " ")
    )


def criticals(proc: ServerProcess) -> list[str]:
    return [str(line["msg"]) for line in list(proc.logs) if line.get("level") == "critical"]


async def refused(stub: analytics_pb2_grpc.AnalyticsServiceAsyncStub) -> grpc.aio.AioRpcError:
    """The first refusal of a TrackEvent, polling until one comes."""
    errors: list[grpc.aio.AioRpcError] = []

    async def one_refused() -> bool:
        try:
            await stub.TrackEvent(event("after"), timeout=10)
        except grpc.aio.AioRpcError as exc:
            errors.append(exc)
            return True
        return False

    await poll(one_refused, "a refused TrackEvent")
    return errors[0]


@pytest.mark.parametrize("how", ["deleted", "replaced"])
async def test_a_database_file_gone_while_serving_is_never_acknowledged_into(
    tmp_path: Path, how: str
) -> None:
    db = tmp_path / "events.db"
    saved = 0
    proc = ServerProcess("--store", f"sqlite:///{db}", http_address="").start()
    try:
        async with grpc.aio.insecure_channel(proc.address, options=CHANNEL_OPTIONS) as ch:
            stub = analytics_pb2_grpc.AnalyticsServiceStub(ch)
            assert (await stub.TrackEvent(event("before"))).success
            if how == "deleted":
                db.unlink()
            else:  # a volume swap, a restore from backup: another file at the path
                other = tmp_path / "other.db"
                sqlite3.connect(other).close()
                other.replace(db)
            if how == "deleted":
                # The next commit group goes into the file still open, which is
                # then written back to its path: acknowledged, and kept. (Unless
                # the idle watchdog found the deletion first: then refused.)
                with contextlib.suppress(grpc.aio.AioRpcError):  # as the refusals below
                    saved += (await stub.TrackEvent(event("saved"), timeout=10)).success
            else:
                # The very next commit group is refused, and says which file.
                with pytest.raises(grpc.aio.AioRpcError) as first:
                    await stub.TrackEvent(event("after"), timeout=10)
                assert first.value.code() == grpc.StatusCode.UNAVAILABLE
                assert str(db) in (first.value.details() or "")
            await poll(lambda: _is(health(ch), NOT_SERVING), "health NOT_SERVING")
            again = await refused(stub)
            assert again.code() == grpc.StatusCode.UNAVAILABLE
            assert str(db) in (again.details() or "")
            assert await health(ch, "liveness") == SERVING  # a restart is the fix
        # The log is read on another thread, which a busy machine may delay.
        await poll(lambda: _holds(bool(criticals(proc))), "a CRITICAL line")
        lost = criticals(proc)
        assert len(lost) == 1, [line for line in list(proc.logs) if line.get("level") != "info"]
        assert str(db) in lost[0]
        assert scrape(proc, "eventwire_store_lost_total") == 1
        assert scrape(proc, "eventwire_store_up") == 0
        proc.terminate()
        assert await asyncio.to_thread(proc.wait) == 0
    finally:
        proc.kill()
    if how == "deleted":
        with contextlib.closing(sqlite3.connect(db)) as conn:
            assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 1 + saved


async def _is(status: Awaitable[int], expected: int) -> bool:
    return await status == expected


async def _holds(value: bool) -> bool:
    return value


async def test_a_deleted_file_is_noticed_while_idle(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    with ServerProcess("--store", f"sqlite:///{db}", http_address="") as proc:
        async with grpc.aio.insecure_channel(proc.address, options=CHANNEL_OPTIONS) as ch:
            assert await health(ch) == SERVING
            db.unlink()
            # No write comes to find it: the watchdog does, within a probe interval.
            await poll(lambda: _is(health(ch), NOT_SERVING), "health NOT_SERVING", timeout=10)
        assert len(criticals(proc)) == 1


async def set_attribute(change: str, paths: list[Path]) -> None:
    await asyncio.to_thread(
        subprocess.run,
        ["chattr", change, *map(str, paths)],
        check=True,
    )


@pytest.fixture
def chattr(tmp_path: Path) -> Iterator[list[Path]]:
    """Files to make immutable; their attribute is cleared again whatever happens."""
    probe = tmp_path / "probe"
    probe.touch()
    done = subprocess.run(["chattr", "+i", str(probe)], capture_output=True, check=False)  # noqa: S607
    if done.returncode != 0:
        pytest.skip(f"SKIPPED LOUDLY: chattr +i does not work here: {done.stderr.decode()}")
    subprocess.run(["chattr", "-i", str(probe)], check=True)  # noqa: S607
    files: list[Path] = []
    try:
        yield files
    finally:
        for path in files:
            subprocess.run(["chattr", "-i", str(path)], check=False)  # noqa: S607


async def test_an_immutable_database_is_unavailable_then_recovers(
    tmp_path: Path, chattr: list[Path]
) -> None:
    """chattr +i on the files SQLite maps (the -shm WAL index) used to kill it with SIGBUS."""
    db = tmp_path / "events.db"
    chattr += [db, Path(f"{db}-wal"), Path(f"{db}-shm")]
    proc = ServerProcess(
        "--store", f"sqlite:///{db}", "--store-probe-interval", "0.1", http_address=""
    ).start()
    try:
        async with grpc.aio.insecure_channel(proc.address, options=CHANNEL_OPTIONS) as ch:
            stub = analytics_pb2_grpc.AnalyticsServiceStub(ch)
            for i in range(5):
                assert (await stub.TrackEvent(event(f"before-{i}"))).success
            await set_attribute("+i", chattr)
            # Written back, the mapped pages are clean: SQLite's next write to one
            # faults, and on an immutable file that fault is a SIGBUS.
            os.sync()
            error = await refused(stub)
            assert error.code() == grpc.StatusCode.UNAVAILABLE
            await poll(lambda: _is(health(ch), NOT_SERVING), "health NOT_SERVING")
            with pytest.raises(grpc.aio.AioRpcError) as read:
                await stub.CountEvents(analytics_pb2.CountEventsRequest(), timeout=10)
            assert read.value.code() == grpc.StatusCode.UNAVAILABLE
            assert any("immutable" in str(line.get("msg")) for line in list(proc.logs))

            await set_attribute("-i", chattr)
            await poll(lambda: _is(health(ch), SERVING), "health SERVING again")
            assert (await stub.TrackEvent(event("after"))).success
            counted = await stub.CountEvents(analytics_pb2.CountEventsRequest(), timeout=10)
            assert counted.count == 6
        assert not criticals(proc)  # a fault that clears is not a lost store
        proc.terminate()
        assert await asyncio.to_thread(proc.wait) == 0
    finally:
        proc.kill()


@pytest.fixture
def doomed_database() -> Iterator[str]:
    """A PostgreSQL database of its own, for a test that drops it."""
    name = f"eventwire_doomed_{secrets.token_hex(4)}"
    try:
        with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f"CREATE DATABASE {name}")
    except psycopg.Error as exc:
        pytest.skip(f"SKIPPED LOUDLY: PostgreSQL not reachable at {ADMIN_URL}: {exc}")
    try:
        yield name
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def test_a_dropped_postgres_database_is_lost_not_acknowledged(doomed_database: str) -> None:
    url = with_database(ADMIN_URL, doomed_database) + "?command_timeout=2"
    proc = ServerProcess("--store", url, "--workers", "1", http_address="").start()
    try:
        async with grpc.aio.insecure_channel(proc.address, options=CHANNEL_OPTIONS) as ch:
            stub = analytics_pb2_grpc.AnalyticsServiceStub(ch)
            assert (await stub.TrackEvent(event("before"))).success
            with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
                admin.execute(f"DROP DATABASE {doomed_database} WITH (FORCE)")
            error = await refused(stub)
            assert error.code() == grpc.StatusCode.UNAVAILABLE
            await poll(lambda: _is(health(ch), NOT_SERVING), "health NOT_SERVING", timeout=30)

            async def named() -> bool:
                try:
                    await stub.TrackEvent(event("after"), timeout=10)
                except grpc.aio.AioRpcError as exc:
                    return doomed_database in (exc.details() or "")
                return False

            await poll(named, "a refusal naming the database", timeout=30)
        lost = criticals(proc)
        assert len(lost) == 1
        assert doomed_database in lost[0]
        assert scrape(proc, "eventwire_store_lost_total") == 1
        proc.terminate()
        assert await asyncio.to_thread(proc.wait) == 0
    finally:
        proc.kill()


@pytest.fixture
def failing_disk(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A filesystem whose block device fails writes with EIO on demand, as root.

    An ext2 filesystem on a loop device whose backing file is sparse and lives
    on a 24 MiB tmpfs: fill that tmpfs (the second path: a ballast file to
    write) and the loop device fails every write of a block not yet backed,
    which the filesystem reports as EIO; delete the ballast and it heals.
    (There is no device-mapper "error" target in this kernel.)
    """
    mount = tmp_path / "disk"
    mount.mkdir()

    def run(*argv: str) -> str:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"SKIPPED LOUDLY: {' '.join(argv)} failed here: {done.stderr}")
        return done.stdout.strip()

    with contextlib.ExitStack() as stack:
        back = stack.enter_context(tmpfs(tmp_path / "back", "size=24m"))
        image = back / "disk.img"
        run("truncate", "-s", "128M", str(image))
        device = run("losetup", "--find", "--show", str(image))
        stack.callback(subprocess.run, ["losetup", "-d", device], check=False)
        run("mkfs.ext2", "-q", "-N", "2048", device)
        run("mount", device, str(mount))
        stack.callback(subprocess.run, ["umount", "-l", str(mount)], check=False)
        yield mount, back / "ballast"


async def test_eio_from_the_disk_is_unavailable_then_recovers(
    failing_disk: tuple[Path, Path],
) -> None:
    mount, ballast = failing_disk
    db = mount / "events.db"
    proc = ServerProcess(
        "--store", f"sqlite:///{db}", "--store-probe-interval", "0.1", http_address=""
    ).start()
    try:
        async with grpc.aio.insecure_channel(proc.address, options=CHANNEL_OPTIONS) as ch:
            stub = analytics_pb2_grpc.AnalyticsServiceStub(ch)
            acknowledged = 0
            for _ in range(5):
                assert (await stub.TrackEvent(event("before"))).success
                acknowledged += 1
            await asyncio.to_thread(fill_disk, ballast)
            big = analytics_pb2.TrackEventRequest(
                event_name="big", properties={f"k{j}": "x" * 7000 for j in range(4)}
            )
            refusal: grpc.aio.AioRpcError | None = None
            for _ in range(2000):  # every commit grows the WAL into unbacked blocks
                try:
                    await stub.TrackEvent(big, timeout=10)
                except grpc.aio.AioRpcError as exc:
                    refusal = exc
                    break
                acknowledged += 1
            assert refusal is not None
            assert refusal.code() == grpc.StatusCode.UNAVAILABLE
            await poll(lambda: _is(health(ch), NOT_SERVING), "health NOT_SERVING")
            assert any("I/O error" in str(line.get("msg")) for line in list(proc.logs))

            ballast.unlink()
            await poll(lambda: _is(health(ch), SERVING), "health SERVING again")
            assert (await stub.TrackEvent(event("after"))).success
            counted = await stub.CountEvents(analytics_pb2.CountEventsRequest(), timeout=10)
            assert counted.count == acknowledged + 1  # every acknowledged event, no more
        proc.terminate()
        assert await asyncio.to_thread(proc.wait) == 0
    finally:
        proc.kill()


async def test_stopping_while_immutable_exits_zero_and_loses_nothing(
    tmp_path: Path, chattr: list[Path]
) -> None:
    db = tmp_path / "events.db"
    chattr += [db, Path(f"{db}-wal"), Path(f"{db}-shm")]
    proc = ServerProcess("--store", f"sqlite:///{db}", http_address="").start()
    try:
        async with grpc.aio.insecure_channel(proc.address, options=CHANNEL_OPTIONS) as ch:
            stub = analytics_pb2_grpc.AnalyticsServiceStub(ch)
            for i in range(5):
                assert (await stub.TrackEvent(event(f"kept-{i}"))).success
        await set_attribute("+i", chattr)
        os.sync()
        # Closing SQLite checkpoints into the mapped WAL index: that would be
        # the SIGBUS now, so the store is left unclosed and the process ends.
        proc.terminate()
        assert await asyncio.to_thread(proc.wait) == 0
        assert any("still immutable" in str(line.get("msg")) for line in proc.logs)
    finally:
        proc.kill()
    await set_attribute("-i", chattr)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 5
