"""Abuse from a raw HTTP/2 client: ping flood, Rapid Reset, connection flood.

A real ``eventwire serve`` process takes all three while a well-behaved client
keeps calling it. The server must answer the ping flood with GOAWAY, survive
the rest, keep its memory bounded and keep serving the good client. Bigger
runs, and the figures in the README's Security section: ``bench/abuse.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventwire.testing._abuse import LegitClient, abuse
from eventwire.testing._process import ServerProcess
from tests.support.security import Leaks, spawn


@pytest.fixture
def target(tmp_path: Path, leaks: Leaks) -> Iterator[ServerProcess]:
    proc = spawn(
        leaks, "--store", f"sqlite:///{tmp_path / 'e.db'}", "--sqlite-synchronous", "normal"
    ).start()
    try:
        yield proc
    finally:
        proc.kill()


async def test_floods_leave_the_server_up_bounded_and_serving(target: ServerProcess) -> None:
    report = await asyncio.to_thread(
        abuse,
        target.address,
        target.pid,
        ping_connections=5,
        pings=500,
        reset_connections=2,
        resets=30_000,
        flood_connections=300,
        hold=0.5,
        baseline=1.0,
    )
    assert report.outcomes["ping_flood"] == ["too_many_pings"] * 5, report
    assert report.rapid_reset["streams"] > 0
    assert report.connection_flood["connections"] == 300
    assert not report.legit_errors, report
    assert report.legit_calls_during > 10, report
    # Loose bounds: two shared cores, other suites running. What matters is
    # that nothing grows with the attack's size and nothing stalls for long.
    assert report.p99_during < 2.0, report
    assert report.rss_after - report.rss_before < 150 * 1024, report
    assert target._require().poll() is None, "the server survived"
    with LegitClient(target.address) as after:
        await asyncio.sleep(0.5)
    assert after.latencies
    assert not after.errors
