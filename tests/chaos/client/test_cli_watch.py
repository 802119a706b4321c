"""``eventwire alerts watch`` through a server crash: the SDK resumes it, nothing lost or repeated.

The command is a real process reading a real ``eventwire serve``, which is
SIGKILLed and restarted on the same port and database while alerts keep
coming; the watch prints each acknowledged alert exactly once, and says on
stderr that it resumed.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import eventwire.client as ec
from eventwire.testing._process import ServerProcess


def _report(target: str, key: str) -> str:
    with ec.SyncTelemetryClient(target, timeout=10) as client:
        return client.report_alert("dev-1", "heat", idempotency_key=key).tracking_id


async def _line(stream: asyncio.StreamReader) -> str:
    line = await asyncio.wait_for(stream.readline(), 60)
    assert line, "the watch ended"
    return line.decode()


async def test_cli_watch_resumes_after_a_server_restart_exactly_once(tmp_path: Path) -> None:
    server = ServerProcess(
        "--store", f"sqlite:///{tmp_path / 'events.db'}", "--workers", "1", http_address=""
    )
    await asyncio.to_thread(server.start)
    watch: asyncio.subprocess.Process | None = None
    try:
        acked = [await asyncio.to_thread(_report, server.address, f"k{n}") for n in range(2)]
        watch = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "eventwire",
            "alerts",
            "watch",
            "--json",
            "--from-start",
            "--target",
            server.address,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert watch.stdout is not None
        assert watch.stderr is not None
        seen = [json.loads(await _line(watch.stdout)) for _ in range(2)]

        server.kill()
        await asyncio.to_thread(server.restart)
        # The watch reconnects by itself; alerts reported after the restart reach it.
        acked += [await asyncio.to_thread(_report, server.address, f"k{n}") for n in range(2, 5)]
        seen += [json.loads(await _line(watch.stdout)) for _ in range(3)]
        # grpc's C core may write lines of its own to stderr first.
        resumed = await _line(watch.stderr)
        while not resumed.startswith("watch interrupted"):
            resumed = await _line(watch.stderr)
    finally:
        if watch is not None and watch.returncode is None:
            watch.kill()
            await watch.wait()
        server.kill()
    assert [a["trackingId"] for a in seen] == acked
    assert len({a["cursor"] for a in seen}) == len(seen)
    assert resumed.startswith("watch interrupted (UNAVAILABLE); resuming in ")
