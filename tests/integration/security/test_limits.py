"""Limits: what a connection, a call and a tenant may take, each set by a flag."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from pathlib import Path

import grpc
import httpx
import pytest

from eventwire.api import analytics_pb2, analytics_pb2_grpc
from eventwire.testing import running_server
from eventwire.testing._abuse import RawH2
from tests.support.doors import DOORS, call, http_status_of_error
from tests.support.probes import poll
from tests.support.security import ACME, GLOBEX, Leaks, bearer, traced_server

SLOW = os.environ.get("EVENTWIRE_SLOW_TESTS") == "1"


@pytest.mark.parametrize("door", DOORS)
async def test_rate_limit_per_tenant_on_every_door(
    leaks: Leaks, token_file: Path, tmp_path: Path, door: str
) -> None:
    async with traced_server(
        leaks,
        auth_tokens=str(token_file),
        rate_limit=0.5,
        rate_burst=3,
        store=f"sqlite:///{tmp_path / 'e.db'}",
    ) as srv:
        async with grpc.aio.insecure_channel(srv.address) as ch:
            stub = analytics_pb2_grpc.AnalyticsServiceStub(ch)
            event = analytics_pb2.TrackEventRequest(event_name="e")
            await stub.TrackEvents(
                analytics_pb2.EventBatch(events=[event, event]), metadata=bearer(ACME)
            )
            await stub.TrackEvent(event, metadata=bearer(ACME))
            call_ = stub.TrackEvent(event, metadata=bearer(ACME))
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call_
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            pushback = dict(await call_.trailing_metadata() or ())["grpc-retry-pushback-ms"]
            assert 0 < int(str(pushback)) <= 2000
            # Another tenant's bucket is untouched.
            assert (await stub.TrackEvent(event, metadata=bearer(GLOBEX))).success
        # The bucket is the tenant's, whichever door it comes through.
        async with httpx.AsyncClient(base_url=f"http://{srv.http_address}", timeout=5) as http:
            out = await call(
                http, door, "TrackEvent", {"event_name": "e"}, [("authorization", f"Bearer {ACME}")]
            )
        assert out.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], out
        assert out.http_status == http_status_of_error(door, "TrackEvent", 429)
        assert 1 <= int(out.headers["retry-after"]) <= 2
        assert out.retry_delay_ms is not None
        assert 0 < out.retry_delay_ms <= 2000


async def test_oversized_metadata_is_refused_and_the_server_carries_on(
    leaks: Leaks, tmp_path: Path
) -> None:
    async with (
        traced_server(
            leaks, max_metadata_bytes=2048, store=f"sqlite:///{tmp_path / 'e.db'}"
        ) as srv,
        grpc.aio.insecure_channel(srv.address) as ch,
    ):
        stub = analytics_pb2_grpc.AnalyticsServiceStub(ch)
        event = analytics_pb2.TrackEventRequest(event_name="e")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.TrackEvent(event, metadata=(("x-padding", "p" * 4096),), timeout=5)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert (await stub.TrackEvent(event, metadata=(("x-small", "p" * 512),))).success


async def test_connection_settings_age_idle_and_handshake_limits(
    leaks: Leaks, tmp_path: Path
) -> None:
    async with traced_server(
        leaks,
        max_concurrent_streams=7,
        max_connection_idle=0.5,
        handshake_timeout=0.5,
        store=f"sqlite:///{tmp_path / 'e.db'}",
    ) as srv:

        def probe() -> None:
            with RawH2(srv.address) as conn:
                conn.poll(0.5)
                assert conn.seen.settings.get(3) == 7  # SETTINGS_MAX_CONCURRENT_STREAMS
                assert conn.wait_for("goaway", 5), "an idle connection is closed"
                assert conn.seen.goaway is not None
                assert conn.seen.goaway.additional_data == b"connection idle"
            host, port = srv.address.rsplit(":", 1)
            with socket.create_connection((host, int(port)), timeout=10) as sock:
                began = time.monotonic()
                while sock.recv(4096):  # the server's preface, then EOF
                    pass
                assert time.monotonic() - began < 5

        await asyncio.to_thread(probe)

    async with traced_server(
        leaks,
        max_connection_age=0.3,
        max_connection_age_grace=0.3,
        store=f"sqlite:///{tmp_path / 'e2.db'}",
    ) as srv:

        def aged() -> None:
            with RawH2(srv.address) as conn:
                began = time.monotonic()
                # GOAWAY, then the close after the grace period (with no call
                # open there is nothing to wait for, and the GOAWAY may be lost
                # to the connection reset).
                assert conn.wait_for("closed", 5), "an old connection is closed"
                assert 0.2 < time.monotonic() - began < 3

        await asyncio.to_thread(aged)
        # Clients just reconnect.
        async with grpc.aio.insecure_channel(srv.address) as ch:
            stub = analytics_pb2_grpc.AnalyticsServiceStub(ch)
            for _ in range(3):
                event = analytics_pb2.TrackEventRequest(event_name="e")
                assert (await stub.TrackEvent(event, timeout=5)).success
                await asyncio.sleep(0.4)


def _pings(address: str, interval: float, count: int) -> RawH2:
    conn = RawH2(address)
    for _ in range(count):
        if conn.seen.goaway is not None or conn.seen.closed:
            break
        conn.ping()
        conn.poll(interval)
    return conn


async def test_keepalive_enforcement_accepts_pings_at_twice_the_minimum_interval(
    leaks: Leaks, tmp_path: Path
) -> None:
    # The default accepts a ping every 5 s, so a client pinging every 10 s is
    # within it by 2x. Here the same rule on a faster clock: minimum 0.5 s,
    # pings every 1 s pass; EVENTWIRE_SLOW_TESTS=1 runs the real 10 s case.
    interval, minimum = (10.0, 5.0) if SLOW else (1.0, 0.5)
    async with traced_server(
        leaks, min_client_ping_interval=minimum, store=f"sqlite:///{tmp_path / 'e.db'}"
    ) as srv:
        polite = await asyncio.to_thread(_pings, srv.address, interval, 4)
        polite.poll(0.2)
        assert polite.seen.goaway is None
        assert not polite.seen.closed
        assert polite.seen.pings_acked == 4
        polite.close()
        rude = await asyncio.to_thread(_pings, srv.address, minimum / 10, 6)
        assert rude.wait_for("goaway", 5)
        assert rude.seen.goaway is not None
        assert rude.seen.goaway.additional_data == b"too_many_pings"
        rude.close()


async def test_one_byte_budget_spans_streams_batches_and_unary_calls(tmp_path: Path) -> None:
    blob = {f"k{j}": "x" * 7000 for j in range(4)}  # ~28 KB per event
    big = analytics_pb2.TrackEventRequest(event_name="big", properties=blob)
    async with (
        running_server(store=f"sqlite:///{tmp_path / 'e.db'}", max_inflight_bytes=160_000) as srv,
        grpc.aio.insecure_channel(srv.address) as ch,
    ):
        stub = analytics_pb2_grpc.AnalyticsServiceStub(ch)
        holding = stub.StreamEvents()
        for _ in range(5):  # ~140 KB held by an open stream
            await holding.write(big)

        async def holds() -> bool:
            return srv.budget.held >= 140_000

        await poll(holds, "the stream's events held")
        for refused in (
            stub.TrackEvent(big),
            stub.TrackEvents(analytics_pb2.EventBatch(events=[big, big])),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await refused
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "max-inflight-bytes" in (info.value.details() or "")
            trailers = dict(info.value.trailing_metadata() or ())
            assert int(str(trailers["grpc-retry-pushback-ms"])) > 0
        # The Connect doors charge the same budget (the JSON routes do not).
        async with httpx.AsyncClient(base_url=f"http://{srv.http_address}", timeout=5) as http:
            for door in ("connect", "connect-proto", "grpc-web"):
                request = {"event_name": "big", "properties": blob}
                out = await call(http, door, "TrackEvent", request)
                assert out.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], (door, out)
                assert "max-inflight-bytes" in out.message
                assert out.retry_delay_ms is not None
                assert out.retry_delay_ms > 0
        small = await stub.TrackEvent(analytics_pb2.TrackEventRequest(event_name="small"))
        assert small.success  # what fits still goes through
        await holding.done_writing()
        assert (await holding).accepted == 5
        assert srv.budget.held == 0  # everything released once the calls ended
        assert (await stub.TrackEvent(big)).success
