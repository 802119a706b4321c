"""Request floods from raw HTTP/2 clients must not fail anyone else's calls.

A real ``eventwire serve`` process takes 20 connections pipelining unary
health checks (no token needed) as fast as it answers them, then Rapid Reset
from 10 connections, while a well-behaved client calls ``TrackEvent`` and a
load balancer's probe calls ``Health/Check`` (1 s deadlines; 3 s for the probe
while the flood is of health checks too). Every one of their calls must
succeed; a prober on ``--health-port`` gets every check answered SERVING
within 1 s during the health-check flood. The attackers run in their own
process, so the probes' latencies are the server's; how fast the server
answered is for ``bench/abuse.py`` to measure, not for a test on a shared machine to assert.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import socket
from collections.abc import Iterator
from multiprocessing.pool import Pool
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2

from eventwire.testing._floods import FloodResult, pipelined_flood, rapid_reset
from eventwire.testing._probes import HealthProber, LegitClient
from tests.support.security import Leaks, spawn

DEADLINE = 1.0


@pytest.fixture(scope="module")
def attacker() -> Iterator[Pool]:
    with multiprocessing.get_context("spawn").Pool(10) as pool:
        pool.apply(abs, (0,))  # the children are up before anything is timed
        yield pool


@pytest.mark.parametrize("streams", [None, 100])
async def test_pipelined_unary_floods_fail_no_other_call(
    tmp_path: Path, leaks: Leaks, attacker: Pool, streams: int | None
) -> None:
    extra = () if streams is None else ("--max-concurrent-streams", str(streams))
    target = spawn(leaks, "--store", f"sqlite:///{tmp_path / 'e.db'}", *extra).start()
    try:
        # The prober's checks queue behind the flood's own, in grpcio's one queue
        # per method: up to 20 x --max-concurrent-streams of them.
        with (
            LegitClient(target.address, timeout=DEADLINE) as client,
            HealthProber(target.address, timeout=3 * DEADLINE) as prober,
        ):
            flood: FloodResult = await asyncio.to_thread(
                attacker.apply, pipelined_flood, (target.address, 5.0), {"connections": 20}
            )
        assert target._require().poll() is None, "the server survived"
    finally:
        target.kill()
    assert flood.answered > 1000, flood  # the flood was served, not just refused
    assert not client.errors, client.errors
    assert len(client.latencies) > 20
    if streams is None:
        # 20,000 checks ahead of the prober's: late, but never refused.
        assert not [e for e in prober.errors if "DEADLINE_EXCEEDED" not in e], prober.errors
    else:
        assert not prober.errors, prober.errors
        assert len(prober.latencies) > 5


class ServingProber(HealthProber):
    """Counts an answer other than SERVING as an error too."""

    def _call(self) -> None:
        reply = self._stub.Check(self._request, timeout=self._timeout)
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            self.errors.append(f"answered {reply.status}")


async def test_probe_port_answers_every_check_during_a_health_check_flood(
    tmp_path: Path, leaks: Leaks, attacker: Pool
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    target = spawn(
        leaks, "--store", f"sqlite:///{tmp_path / 'e.db'}", "--health-port", str(port)
    ).start()
    try:
        # The flood fills the main port's Health/Check queue; the probe port's
        # server has its own, which only the prober uses.
        with ServingProber(f"127.0.0.1:{port}", timeout=DEADLINE) as prober:
            flood: FloodResult = await asyncio.to_thread(
                attacker.apply, pipelined_flood, (target.address, 5.0), {"connections": 20}
            )
        assert target._require().poll() is None, "the server survived"
    finally:
        target.kill()
    assert flood.answered > 1000, flood  # the main port was flooded indeed
    assert not prober.errors, prober.errors
    assert len(prober.latencies) > 20


@pytest.mark.parametrize("streams", [None, 100])
async def test_rapid_reset_fails_no_other_call(
    tmp_path: Path, leaks: Leaks, attacker: Pool, streams: int | None
) -> None:
    extra = () if streams is None else ("--max-concurrent-streams", str(streams))
    target = spawn(leaks, "--store", f"sqlite:///{tmp_path / 'e.db'}", *extra).start()
    method = "/analytics.AnalyticsService/TrackEvent"
    try:
        with (
            LegitClient(target.address, timeout=DEADLINE) as client,
            HealthProber(target.address, timeout=DEADLINE) as prober,
        ):
            await asyncio.sleep(0.2)
            started = [
                attacker.apply_async(rapid_reset, (target.address, 50_000), {"method": method})
                for _ in range(10)
            ]
            outcomes = await asyncio.to_thread(lambda: [s.get(120) for s in started])
            await asyncio.sleep(0.2)
        assert target._require().poll() is None, "the server survived"
    finally:
        target.kill()
    assert sum(sent for sent, _ in outcomes) >= 10_000, outcomes
    assert client.latencies
    assert prober.latencies
    errors = client.errors + prober.errors
    if streams is None:
        # The reset streams' calls still queue for the same method as the
        # client's, up to 1,000 per connection: a call may miss its 1 s
        # deadline, none is refused.
        assert not [e for e in errors if "DEADLINE_EXCEEDED" not in e], errors
    else:
        assert not errors, errors
