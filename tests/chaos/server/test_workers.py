"""``--workers``: several server processes on one port, drained together on SIGTERM."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
import urllib.request
from pathlib import Path

import grpc
import pytest

from eventwire.api import analytics_pb2, analytics_pb2_grpc
from eventwire.security.auth import hash_token
from eventwire.testing._process import ServerProcess

pytestmark = pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="Linux only")


def _wait_for(predicate: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def _serving(server: ServerProcess) -> list[dict[str, object]]:
    return [line for line in list(server.logs) if line.get("msg") == "serving"]


def _supervisor_line(server: ServerProcess) -> dict[str, object]:
    return next(line for line in list(server.logs) if line.get("msg") == "supervising")


def _scrape(metrics_address: str) -> str:
    with urllib.request.urlopen(f"http://{metrics_address}/metrics", timeout=5) as reply:
        text: str = reply.read().decode()
    return text


def _handled_ok(metrics_address: str) -> float:
    text = _scrape(metrics_address)
    total = 0.0
    for line in text.splitlines():
        if line.startswith("grpc_server_handled_total{") and all(
            label in line for label in ('grpc_method="TrackEvent"', 'grpc_code="OK"')
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _track_on_new_connections(address: str, count: int) -> None:
    # One channel per call: a new TCP connection each, which the kernel's
    # SO_REUSEPORT hashing spreads over the workers.
    for i in range(count):
        options = [("grpc.use_local_subchannel_pool", 1)]
        with grpc.insecure_channel(address, options=options) as channel:
            reply = analytics_pb2_grpc.AnalyticsServiceStub(channel).TrackEvent(
                analytics_pb2.TrackEventRequest(event_name="w", event_id=f"ev-{i}"), timeout=10
            )
        assert reply.success


def test_two_workers_share_the_port_and_drain_on_sigterm(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    server = ServerProcess("--workers", "2", "--store", f"sqlite:///{db}").start()
    try:
        _wait_for(lambda: len(_serving(server)) == 2)
        lines = _serving(server)
        assert lines[0]["grpc_address"] == lines[1]["grpc_address"]
        assert lines[0]["http_address"] == lines[1]["http_address"]
        assert lines[0]["metrics_address"] != lines[1]["metrics_address"]
        pids = _supervisor_line(server)["pids"]
        assert isinstance(pids, list)
        assert len(set(pids)) == 2

        _track_on_new_connections(server.address, 40)

        per_worker = [_handled_ok(str(line["metrics_address"])) for line in lines]
        assert sum(per_worker) == 40
        assert all(n > 0 for n in per_worker), f"one worker took every call: {per_worker}"
        # Each worker's process collector describes that worker, not the supervisor.
        for line in lines:
            rss = next(
                float(sample.split()[1])
                for sample in _scrape(str(line["metrics_address"])).splitlines()
                if sample.startswith("process_resident_memory_bytes ")
            )
            with open(f"/proc/{line['pid']}/statm") as statm:
                actual = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            assert 0.8 * actual < rss < 1.25 * actual

        server.terminate()
        assert server.wait(60) == 0
        for pid in pids:
            assert isinstance(pid, int)
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
        drained = [line for line in server.logs if line.get("msg") == "stopped"]
        assert len(drained) == 2
    finally:
        server.kill()
    with sqlite3.connect(db) as conn:
        stored = {row[0] for row in conn.execute("SELECT event_id FROM events")}
    assert stored == {f"ev-{i}" for i in range(40)}


def test_a_worker_that_dies_takes_the_server_down(tmp_path: Path) -> None:
    server = ServerProcess("--workers", "2", "--store", f"sqlite:///{tmp_path / 'w.db'}").start()
    try:
        _wait_for(lambda: len(_serving(server)) == 2)
        pids = _supervisor_line(server)["pids"]
        assert isinstance(pids, list)
        os.kill(pids[0], signal.SIGKILL)
        # The survivor is drained, and the supervisor reports the failure.
        assert server.wait(60) != 0
        assert any(line.get("msg") == "stopped" for line in server.logs)
    finally:
        server.kill()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0) until its parent (here: init) reaps it.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"


def test_workers_do_not_outlive_a_killed_supervisor(tmp_path: Path) -> None:
    server = ServerProcess("--workers", "2", "--store", f"sqlite:///{tmp_path / 'w.db'}").start()
    pids: list[int] = []
    try:
        _wait_for(lambda: len(_serving(server)) == 2)
        listed = _supervisor_line(server)["pids"]
        assert isinstance(listed, list)
        pids = [int(pid) for pid in listed]
        server.kill()  # SIGKILL: the supervisor cannot stop anyone itself
        _wait_for(lambda: not any(_alive(pid) for pid in pids))
    finally:
        server.kill()
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_sighup_reaches_every_worker(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{hash_token('secret')}  acme  write\n")
    server = ServerProcess(
        "--workers",
        "2",
        "--store",
        f"sqlite:///{tmp_path / 'w.db'}",
        "--auth-tokens",
        str(tokens),
    ).start()
    try:
        _wait_for(lambda: len(_serving(server)) == 2)
        before = len(server.logs)
        os.kill(server.pid, signal.SIGHUP)
        _wait_for(
            lambda: sum("reload" in str(line.get("msg", "")) for line in server.logs[before:]) >= 2
        )
        assert _alive(server.pid)  # SIGHUP's default action would have killed the supervisor
    finally:
        server.kill()
