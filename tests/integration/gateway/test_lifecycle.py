"""The gateway starts, drains and reports readiness together with the gRPC server."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import pytest

from eventwire.api import analytics_pb2, analytics_pb2_grpc
from eventwire.testing import running_server
from eventwire.testing._process import ServerProcess

JSON = {"content-type": "application/json"}


def rows(db_url: str, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db_url.removeprefix("sqlite:///")) as conn:
        return conn.execute(sql).fetchall()


async def test_empty_http_address_disables_the_gateway(tmp_path: Path) -> None:
    async with running_server(store=f"sqlite:///{tmp_path / 'e.db'}", http_address="") as srv:
        assert srv.http_port == 0
        async with grpc.aio.insecure_channel(srv.address) as ch:
            reply = await analytics_pb2_grpc.AnalyticsServiceStub(ch).TrackEvent(
                analytics_pb2.TrackEventRequest(event_name="grpc-only")
            )
        assert reply.success


async def test_taken_http_port_fails_start_and_leaves_the_other_server_alone(
    tmp_path: Path,
) -> None:
    async with running_server(store=f"sqlite:///{tmp_path / 'a.db'}") as first:
        taken = f"127.0.0.1:{first.http_port}"
        with pytest.raises(RuntimeError, match=taken):
            async with running_server(store=f"sqlite:///{tmp_path / 'b.db'}", http_address=taken):
                pytest.fail("a second server must not share the HTTP port")
        async with httpx.AsyncClient(base_url=f"http://{taken}") as http:
            assert (await http.get("/healthz")).status_code == 200


async def test_stop_lets_an_in_flight_request_finish_then_refuses_connections(
    tmp_path: Path,
) -> None:
    db_url = f"sqlite:///{tmp_path / 'e.db'}"
    first_part_sent = asyncio.Event()
    finish = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield b'{"eventName": '
        # httpx asks for the next chunk only once this one is written: from
        # here on the server has a request in flight on this connection.
        first_part_sent.set()
        await finish.wait()
        yield b'"in-flight"}'

    async with running_server(store=db_url) as srv:
        base = f"http://127.0.0.1:{srv.http_port}"
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            # A completed request first, so the connection is surely accepted.
            assert (await http.get("/healthz")).status_code == 200
            request = asyncio.ensure_future(http.post("/v1/events", content=body(), headers=JSON))
            await first_part_sent.wait()
            stopping = asyncio.ensure_future(srv.stop())
            finish.set()
            response = await request
            await stopping
        assert response.status_code == 200, response.text
        assert response.json()["success"] is True
        async with httpx.AsyncClient(base_url=base) as late:
            with pytest.raises(httpx.ConnectError):
                await late.get("/healthz")
    assert rows(db_url, "SELECT event_name FROM events") == [("in-flight",)]


def test_eventwire_serve_runs_the_gateway_and_exits_zero_on_sigterm(tmp_path: Path) -> None:
    proc = ServerProcess("--store", f"sqlite:///{tmp_path / 'e.db'}").start()
    try:
        assert proc.http_address.startswith("127.0.0.1:")
        assert not proc.http_address.endswith(":0")
        with httpx.Client(base_url=f"http://{proc.http_address}", timeout=30) as http:
            r = http.post("/v1/events", json={"eventName": "cli"})
            assert r.status_code == 200, r.text
            assert http.get("/v1/events:count").json() == {"count": "1"}
        proc.terminate()
        assert proc.wait() == 0
    finally:
        proc.kill()  # a no-op once it exited; the test must not leak a server
