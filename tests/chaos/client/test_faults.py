"""Real faults between client and a real eventwire server: breaker fail-fast, server restarts.

The FaultProxy sits between them, so "no network was touched" is checked where
it happens: the proxy's count of accepted connections.
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import weakref
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

import eventwire.client as ec
from eventwire.client import BreakerState, CircuitBreaker, CircuitBreakerPolicy, Transition
from eventwire.testing import FaultProxy, running_server
from eventwire.testing._process import ServerProcess
from tests.support.client import Facade, Factory

S = grpc.StatusCode
B = BreakerState


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def left_ready(client: Facade) -> None:
    """Until the client's channel has seen its connection go (events, not a sleep)."""
    channel = client.client.channel
    ready = grpc.ChannelConnectivity.READY
    if not client.sync:
        async with asyncio.timeout(10):
            while (now := channel.get_state()) is ready:
                await channel.wait_for_state_change(now)
        return
    gone = threading.Event()

    def watch(connectivity: grpc.ChannelConnectivity) -> None:
        if connectivity is not ready:
            gone.set()

    channel.subscribe(watch)
    try:
        assert await asyncio.to_thread(gone.wait, 10)
    finally:
        channel.unsubscribe(watch)


def state(breaker: CircuitBreaker) -> BreakerState:
    # A call, so the type checker does not narrow the property across steps.
    return breaker.state


async def test_breaker_opens_fails_fast_half_opens_and_closes(analytics_client: Factory) -> None:
    clock = FakeClock()
    transitions: list[Transition] = []
    breaker = CircuitBreaker(
        CircuitBreakerPolicy(window_size=4, minimum_calls=4, open_duration=30, half_open_calls=1),
        name="analytics",
        clock=clock,
        on_transition=transitions.append,
    )
    async with running_server() as server, FaultProxy(server.address) as proxy:
        client = analytics_client(proxy.address, breaker=breaker, retry=None, timeout=5)

        async def fail_until_open() -> None:
            # The link turns slow: calls hit their deadline, which the breaker counts.
            proxy.set_faults(latency=10)
            failures = 0
            while state(breaker) is not B.OPEN:
                with pytest.raises(ec.DeadlineExceededError):
                    await client.track_event("e", "u", timeout=0.2)
                failures += 1
            # 50 % of a window of 4, once it holds 4 calls.
            assert 2 <= failures <= 4

        assert (await client.track_event("e", "u")).success
        await fail_until_open()

        # Drop every connection: a call that reached the channel now would dial.
        proxy.reset_connections()
        proxy.set_faults()
        await left_ready(client)
        accepted = proxy.accepted
        for _ in range(5):
            with pytest.raises(ec.CircuitOpenError) as info:
                await client.track_event("e", "u")
            assert info.value.retry_after == 30.0  # the fake clock has not moved
            assert info.value.attempts == 0
            assert isinstance(info.value, ec.UnavailableError)
        assert proxy.accepted == accepted, "an open breaker must not touch the network"

        # Open duration over: one trial goes through, succeeds, and closes the circuit.
        clock.now += 30
        assert state(breaker) is B.HALF_OPEN
        assert (await client.track_event("e", "u")).success
        assert proxy.accepted == accepted + 1
        assert state(breaker) is B.CLOSED

        # Failing again re-opens it; a failed trial sends it straight back to open.
        await fail_until_open()
        clock.now += 30
        with pytest.raises(ec.DeadlineExceededError):
            await client.track_event("e", "u", timeout=0.2)
        assert state(breaker) is B.OPEN
        assert breaker.half_open_at == clock.now + 30

    assert [(t.before, t.after) for t in transitions] == [
        (B.CLOSED, B.OPEN),
        (B.OPEN, B.HALF_OPEN),
        (B.HALF_OPEN, B.CLOSED),
        (B.CLOSED, B.OPEN),
        (B.OPEN, B.HALF_OPEN),
        (B.HALF_OPEN, B.OPEN),
    ]


async def test_invalid_arguments_never_open_the_breaker(analytics_client: Factory) -> None:
    policy = CircuitBreakerPolicy(window_size=4, minimum_calls=2)
    async with running_server() as server:
        client = analytics_client(server.address, breaker=policy, timeout=5)
        for _ in range(6):
            with pytest.raises(ec.InvalidArgumentError) as info:
                await client.track_event("", "u")
            assert info.value.attempts == 1
            assert ("event_name", "must not be empty or blank") in info.value.field_violations
        assert client.client.breaker.state is B.CLOSED


# --- a real server process, killed and restarted mid-run ----------------------------------------


@pytest.mark.skipif(os.name != "posix", reason="kills the server with SIGKILL")
async def test_server_killed_and_restarted_calls_resume(tmp_path: Path, mode: str) -> None:
    db = tmp_path / "events.db"
    tasks_before = asyncio.all_tasks()
    first = ServerProcess("--store", f"sqlite:///{db}", http_address="")
    second = ServerProcess("--store", f"sqlite:///{db}", http_address="")
    acked: list[str] = []
    errors: list[str] = []
    progress = asyncio.Event()
    stop = asyncio.Event()

    async def drive(client: Facade) -> None:
        """Call in a loop, as an application would, recording every outcome."""
        n = 0
        while not stop.is_set():
            n += 1
            try:
                reply = await client.track_event("restart", "u", event_id=f"ev-{n}")
            except ec.CircuitOpenError as exc:
                errors.append(type(exc).__name__)
                # The breaker's own announced time, not a guess.
                await asyncio.sleep(exc.retry_after)
            except ec.RpcError as exc:
                errors.append(type(exc).__name__)
            else:
                assert reply.success
                acked.append(reply.event_id)
            progress.set()

    async def until(predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(20):
            while not predicate():
                progress.clear()
                await progress.wait()

    try:
        await asyncio.to_thread(first.start)
        async with FaultProxy(first.address) as proxy:
            cls = ec.SyncAnalyticsClient if mode == "sync" else ec.AnalyticsClient
            breaker = CircuitBreakerPolicy(window_size=4, minimum_calls=4, open_duration=0.2)
            client = Facade(cls(proxy.address, timeout=1.0, breaker=breaker), mode == "sync")
            driver = asyncio.create_task(drive(client))
            await until(lambda: len(acked) >= 5)

            await asyncio.to_thread(first.kill)  # SIGKILL mid-run, calls in flight
            await until(lambda: len(errors) >= 1)
            before_restart = len(acked)
            proxy.set_upstream((await asyncio.to_thread(second.start)).address)
            await until(lambda: len(acked) >= before_restart + 5)

            stop.set()
            await driver
            raw = client.client.channel
            await client.aclose()
        async with ec.AnalyticsClient(second.address, timeout=5) as check:
            stored = await check.count_events("restart")
    finally:
        first.kill()
        second.kill()

    assert errors, "the kill was seen by the client"
    assert set(errors) <= {"UnavailableError", "DeadlineExceededError", "CircuitOpenError"}
    # Acknowledged means committed: every acked event survived SIGKILL, once.
    assert len(set(acked)) == len(acked)
    assert stored >= len(acked)
    # Nothing leaked: no task left behind, the client's channel closed and collected.
    # (Calling the closed channel to prove it closed is no option: grpcio 1.85
    # segfaults registering a method on a closed sync channel. The clients
    # refuse with ClientClosedError before reaching it, see test_clients.)
    channel = weakref.ref(raw)
    del client, raw, check, driver
    assert asyncio.all_tasks() - tasks_before - {asyncio.current_task()} == set()
    gc.collect()
    assert channel() is None
