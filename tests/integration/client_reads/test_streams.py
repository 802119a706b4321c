"""Resumable streams through the SDK: what ends them, what they survive, how they are left.

Real servers (SQLite in a temporary directory) and a real TCP proxy cutting
connections; every test runs with the async client and with its blocking twin.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import eventwire.client as ec
from eventwire.api import telemetry_pb2
from eventwire.runtime.server import Server
from eventwire.security.auth import hash_token
from eventwire.testing import FaultProxy, running_server
from tests.integration.client_reads.readers import Readers

Make = Callable[..., Readers]
# Quick reconnects: the proxy is back at once, and the test should not wait for a full backoff.
FAST = ec.RetryPolicy(initial_backoff=0.01, max_backoff=0.1)


async def _until(check: Callable[[], Awaitable[bool] | bool], timeout: float = 20.0) -> None:
    async def poll() -> None:
        # What the server or another thread does is only visible by looking again.
        while True:
            result = check()
            if await result if isinstance(result, Awaitable) else result:
                return
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


def _watching(server: Server) -> float:
    """WatchAlerts calls the server is serving now."""
    value = server.metrics.registry.get_sample_value(
        "eventwire_rpcs_in_flight", {"grpc_method": "WatchAlerts"}
    )
    return value or 0.0


async def _report(server: Server, count: int, prefix: str = "a") -> list[str]:
    async with ec.TelemetryClient(server.address, timeout=5) as writer:
        return [
            (await writer.report_alert("d", "smoke", idempotency_key=f"{prefix}{n}")).tracking_id
            for n in range(count)
        ]


async def test_a_cursor_older_than_retention_is_out_of_range(
    db_url: str, make_readers: Make
) -> None:
    async with running_server(
        store=db_url,
        alerts_retention="1s",
        events_retention="1s",
        retention_interval=0.05,
        retention_chunk=2,
    ) as srv:
        reads = make_readers(srv.address, timeout=5)
        await _report(srv, 5)
        old = (await reads.all(reads.telemetry.list_alerts()))[0].cursor
        await reads.call(reads.analytics.track_events, [{"event_name": "e"} for _ in range(3)])
        old_event = (await reads.all(reads.analytics.export_events()))[0].cursor

        async def purged() -> bool:
            return not await reads.all(reads.telemetry.list_alerts())

        await _until(purged)
        stream = reads.telemetry.watch_alerts(after=old)
        with pytest.raises(ec.OutOfRangeError) as info:
            await reads.take(stream, 1)
        assert stream.reconnects == 0  # raised, not retried
        assert stream.cursor == old
        assert "retention" in info.value.message
        # Resuming where the server says goes on with what is kept.
        assert info.value.resume_from is not None
        resumed = reads.telemetry.watch_alerts(after=info.value.resume_from)
        (fresh,) = await _report(srv, 1, prefix="fresh")
        assert [a.tracking_id for a in await reads.take(resumed, 1)] == [fresh]
        await reads.close_stream(resumed)

        async def events_purged() -> bool:
            # SQLite keeps its newest event, so positions never restart.
            return len(await reads.all(reads.analytics.export_events())) <= 1

        await _until(events_purged)
        with pytest.raises(ec.OutOfRangeError):
            await reads.all(reads.analytics.export_events(after=old_event, follow=True))


async def test_reads_without_the_read_scope_are_refused_not_retried(
    tmp_path: Path, make_readers: Make
) -> None:
    writer, reader = "tok-writer-only", "tok-reader"
    tokens = tmp_path / "tokens"
    tokens.write_text(
        f"{hash_token(writer)}  acme  write\n{hash_token(reader)}  acme  read,write\n"
    )
    async with running_server(auth_tokens=str(tokens)) as srv:
        write_only = make_readers(srv.address, timeout=5, token=writer)
        await write_only.call(write_only.telemetry.report_alert, "d", "smoke")
        watch = write_only.telemetry.watch_alerts(from_start=True)
        with pytest.raises(ec.PermissionDeniedError):
            await write_only.take(watch, 1)
        assert watch.reconnects == 0
        with pytest.raises(ec.PermissionDeniedError):
            await write_only.all(write_only.telemetry.list_alerts())
        with pytest.raises(ec.PermissionDeniedError):
            await write_only.all(write_only.analytics.export_events())
        with pytest.raises(ec.PermissionDeniedError):
            await write_only.call(write_only.analytics.query_events)
        anonymous = make_readers(srv.address, timeout=5)
        nobody = anonymous.telemetry.watch_alerts(from_start=True)
        with pytest.raises(ec.UnauthenticatedError):
            await anonymous.take(nobody, 1)
        assert nobody.reconnects == 0
        allowed = make_readers(srv.address, timeout=5, token=reader)
        assert len(await allowed.all(allowed.telemetry.list_alerts())) == 1


async def test_leaving_a_watch_cancels_its_call(db_url: str, make_readers: Make) -> None:
    async with running_server(store=db_url) as srv:
        await _report(srv, 2)
        reads = make_readers(srv.address)
        stream = reads.telemetry.watch_alerts(from_start=True)
        assert len(await reads.take(stream, 1)) == 1
        assert _watching(srv) == 1
        await reads.close_stream(stream)
        await _until(lambda: _watching(srv) == 0)
        # Closed is closed: no call is made again.
        assert await reads.all(stream) == []
        assert _watching(srv) == 0

        if reads.sync:
            # A loop blocked in another thread is ended by close(), without an error.
            blocked = reads.telemetry.watch_alerts(from_start=True)
            seen: list[telemetry_pb2.Alert] = []
            loop = threading.Thread(target=lambda: seen.extend(blocked))
            loop.start()
            await _until(lambda: len(seen) == 2)
            blocked.close()
            await asyncio.to_thread(loop.join, 10)
            assert not loop.is_alive()
            assert len(seen) == 2
        else:
            # Cancelling the task that reads a watch cancels its call.
            live = reads.telemetry.watch_alerts(from_start=True)

            async def read_all() -> None:
                async for _ in live:
                    pass

            task = asyncio.create_task(read_all())
            await _until(lambda: _watching(srv) == 1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        await _until(lambda: _watching(srv) == 0)


async def test_closing_the_client_ends_its_streams(db_url: str, make_readers: Make) -> None:
    async with running_server(store=db_url) as srv:
        await _report(srv, 1)
        reads = make_readers(srv.address)
        watch = reads.telemetry.watch_alerts(from_start=True)
        export = reads.analytics.export_events(follow=True)
        received: list[Any] = []
        # Both wait for more, in a task or a thread, when the clients close.
        readers = [
            asyncio.create_task(reads.consume(watch, received, 10)),
            asyncio.create_task(reads.consume(export, received, 10)),
        ]
        await _until(lambda: len(received) == 1 and _watching(srv) == 1)
        await reads.close()
        # Their loops end without an error, and no call is made again.
        await asyncio.wait_for(asyncio.gather(*readers), 10)
        assert len(received) == 1
        await _until(lambda: _watching(srv) == 0)
        assert (watch.reconnects, export.reconnects) == (0, 0)
        with pytest.raises(ec.ClientClosedError):
            reads.telemetry.watch_alerts()


async def test_a_stream_outlives_the_unary_deadline(db_url: str, make_readers: Make) -> None:
    async with running_server(store=db_url) as srv:
        reads = make_readers(srv.address, timeout=0.05)  # every unary call: 50 ms
        stream = reads.telemetry.watch_alerts(from_start=True)
        first = await _report(srv, 1)
        assert [a.tracking_id for a in await reads.take(stream, 1)] == first
        await asyncio.sleep(0.3)  # six unary deadlines
        second = await _report(srv, 1, prefix="b")
        assert [a.tracking_id for a in await reads.take(stream, 1)] == second
        assert stream.reconnects == 0  # the same call all along
        await reads.close_stream(stream)
        # Given a timeout, the whole stream ends with it, reconnects included.
        bounded = reads.telemetry.watch_alerts(from_start=True, timeout=0.2)
        with pytest.raises(ec.DeadlineExceededError):
            await reads.take(bounded, 3)


async def test_query_events_is_not_held_to_the_write_deadline(
    db_url: str, make_readers: Make
) -> None:
    async with running_server(store=db_url) as srv:
        reads = make_readers(srv.address)
        rpc = reads.analytics._query(
            "", start=0, end=0, bucket=0, group_by="", limit=0, timeout=None
        )
        assert rpc.timeout == ec.DEFAULT_QUERY_TIMEOUT
        assert await reads.call(reads.analytics.query_events) == []
        configured = make_readers(srv.address, timeout=0.5)
        rpc = configured.analytics._query(
            "", start=0, end=0, bucket=0, group_by="", limit=0, timeout=None
        )
        assert rpc.timeout is None  # the config's 0.5 s applies, as to every call


@pytest.mark.parametrize("kind", ["watch", "export"])
async def test_streams_resume_across_cut_connections_exactly_once(
    db_url: str, make_readers: Make, kind: str
) -> None:
    per_writer, cuts = 60, 4
    total = 2 * per_writer
    async with running_server(store=db_url) as srv, FaultProxy(srv.address) as proxy:
        reads = make_readers(proxy.address, retry=FAST, timeout=5)
        stream = (
            reads.telemetry.watch_alerts(from_start=True)
            if kind == "watch"
            else reads.analytics.export_events(follow=True)
        )
        received: list[Any] = []
        acked: list[str] = []

        async def write(number: int) -> None:
            async with (
                ec.TelemetryClient(srv.address, timeout=5) as telemetry,
                ec.AnalyticsClient(srv.address, timeout=5) as analytics,
            ):
                for n in range(per_writer):
                    if kind == "watch":
                        reply = await telemetry.report_alert(
                            f"w{number}", "smoke", idempotency_key=f"w{number}-{n}"
                        )
                        acked.append(reply.tracking_id)
                    else:
                        event_id = f"w{number}-{n}"
                        await analytics.track_event("e", event_id=event_id)
                        acked.append(event_id)
                    await asyncio.sleep(0.002)

        async def cut() -> None:
            for k in range(1, cuts + 1):
                await _until(lambda k=k: len(received) >= k * total // (cuts + 1))  # type: ignore[misc]
                proxy.reset_connections()

        consumer = asyncio.create_task(reads.consume(stream, received, total))
        await asyncio.gather(write(0), write(1), cut())
        await asyncio.wait_for(consumer, 60)
    ids = [m.tracking_id if kind == "watch" else m.event.event_id for m in received]
    assert len(acked) == total
    assert len(ids) == len(set(ids)), "a message was delivered twice"
    assert set(ids) == set(acked), "an acknowledged message was never delivered"
    assert len({m.cursor for m in received}) == total
    assert stream.reconnects >= cuts
    assert proxy.accepted >= cuts + 1
    assert stream.cursor == received[-1].cursor


def _breaker(**policy: Any) -> ec.CircuitBreaker:
    settings: dict[str, Any] = {"minimum_calls": 2, "window_size": 2, "open_duration": 0.2}
    return ec.CircuitBreaker(ec.CircuitBreakerPolicy(**settings | policy), name="w")


async def test_an_open_circuit_is_waited_out_not_raised(db_url: str, make_readers: Make) -> None:
    breaker = _breaker(half_open_calls=1)
    transitions: list[ec.Transition] = []
    breaker.add_hook(transitions.append)
    async with running_server(store=db_url) as srv, FaultProxy(srv.address) as proxy:
        reads = make_readers(proxy.address, retry=FAST, breaker=breaker)
        stream = reads.telemetry.watch_alerts(from_start=True)
        # Nothing behind the proxy: every reconnect is reset, until the circuit opens.
        proxy.set_upstream("127.0.0.1:1")
        taking = asyncio.create_task(reads.take(stream, 1))
        await _until(lambda: any(t.after is ec.BreakerState.OPEN for t in transitions))
        proxy.set_upstream(srv.address)
        (only,) = await _report(srv, 1)
        got = await asyncio.wait_for(taking, 30)
        assert [a.tracking_id for a in got] == [only]
        assert stream.reconnects >= 2
        # The trial that got through is the watch itself: its first alert closed the circuit.
        assert transitions[-1].after is ec.BreakerState.CLOSED
        await reads.close_stream(stream)


async def test_a_quiet_watch_does_not_hold_a_half_open_trial(
    db_url: str, make_readers: Make
) -> None:
    breaker = _breaker(half_open_calls=2)
    async with running_server(store=db_url) as srv, FaultProxy(srv.address) as proxy:
        reads = make_readers(proxy.address, retry=FAST, breaker=breaker, timeout=5)
        stream = reads.telemetry.watch_alerts()  # from now: nothing will come for a while
        proxy.set_upstream("127.0.0.1:1")
        taking = asyncio.create_task(reads.take(stream, 1))
        await _until(lambda: breaker.state is ec.BreakerState.OPEN)
        proxy.set_upstream(srv.address)
        # The watch is back on a half-open trial, and quiet.
        await _until(lambda: _watching(srv) == 1)
        assert breaker.state is ec.BreakerState.HALF_OPEN
        await reads.call(reads.telemetry.list_alerts_page)  # the other trial
        # The watch counts as served once it has lasted (SETTLED_AFTER), so the
        # trials are judged and unary calls are not failed fast behind it.
        await _until(lambda: breaker.state is ec.BreakerState.CLOSED)
        for _ in range(3):
            await reads.call(reads.telemetry.list_alerts_page)
        assert not taking.done()
        reported = await reads.call(reads.telemetry.report_alert, "d", "smoke")
        got = await asyncio.wait_for(taking, 30)
        assert [a.tracking_id for a in got] == [reported.tracking_id]
        await reads.close_stream(stream)
