"""A reader that stops reading is told where to resume and cut off; resuming there loses nothing.

The server holds a few tens of KiB for each such reader (``stream_buffer_bytes``)
and waits ``stream_stall_timeout`` seconds; the backlog written here (~10 MB of
maximum-size alerts) is far more than the kernel's socket buffers, so the
stall is real.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any, Final

import grpc
import httpx
import pytest

from eventwire.api import analytics_pb2, analytics_pb2_grpc, telemetry_pb2, telemetry_pb2_grpc
from eventwire.runtime.server import Server
from eventwire.testing import running_server
from tests.conftest import CHANNEL_OPTIONS

ALERTS: Final = 150
EVENTS: Final = 400
STALL: Final = 1.0
BIG: Final[dict[str, Any]] = {
    "message": "m" * 4096,
    "attributes": {f"a{i:02d}": "v" * 1024 for i in range(64)},
}


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    async with running_server(stream_buffer_bytes=64 << 10, stream_stall_timeout=STALL) as srv:
        yield srv


async def _report_many(server: Server) -> list[str]:
    async with grpc.aio.insecure_channel(server.address, options=CHANNEL_OPTIONS) as channel:
        stub = telemetry_pb2_grpc.TelemetryServiceStub(channel)
        ids = []
        for _ in range(ALERTS):
            reply = await stub.ReportAlert(
                telemetry_pb2.AlertRequest(device_id="d1", alert_type="heat", **BIG),
                timeout=10,
            )
            ids.append(reply.tracking_id)
        return ids


def _stalled_socket(address: str, request: bytes) -> socket.socket:
    """A connection with a tiny receive buffer that sends ``request`` and then reads nothing."""
    host, _, port = address.rpartition(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.sendall(request)
    return sock


def _read_all(sock: socket.socket, timeout: float = 60.0) -> bytes:
    """Everything until the server ends the chunked reply (or closes)."""
    sock.settimeout(timeout)
    data = b""
    while not data.endswith(b"\r\n0\r\n\r\n"):
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        data += chunk
    return data


def _dechunk(raw: bytes) -> tuple[bytes, bytes]:
    head, _, rest = raw.partition(b"\r\n\r\n")
    body = b""
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        body += rest[:size]
        rest = rest[size + 2 :]
    return head, body


def _sse(body: bytes) -> list[dict[str, str]]:
    events = []
    for block in body.decode().split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.split("\n") if line and not line.startswith(":")
        )
        if fields:
            events.append(fields)
    return events


def _logged_once_without_traceback(caplog: pytest.LogCaptureFixture) -> None:
    cut = [r for r in caplog.records if "read nothing for" in r.getMessage()]
    assert len(cut) == 1, [r.getMessage() for r in cut]
    assert cut[0].levelno == logging.INFO
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_a_stalled_sse_watcher_is_told_its_cursor_and_resumes_without_loss(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    ids = await _report_many(server)
    sock = _stalled_socket(
        server.http_address,
        b"GET /v1/alerts:watch?from_start=true HTTP/1.1\r\nhost: test\r\n\r\n",
    )
    with sock:
        await asyncio.sleep(STALL * 4)  # stalled long enough to be cut
        head, body = _dechunk(await asyncio.to_thread(_read_all, sock))
    assert head.startswith(b"HTTP/1.1 200"), head
    events = _sse(body)
    last = events[-1]
    assert last["event"] == "error", last
    status = json.loads(last["data"])
    assert status["code"] == 8, status  # RESOURCE_EXHAUSTED
    alerts = [e for e in events[:-1] if e["event"] == "alert"]
    assert 0 < len(alerts) < ALERTS, "the whole backlog fit the buffers: no stall tested"
    cursor = last["id"]
    assert cursor == alerts[-1]["id"]
    assert cursor in status["message"]
    got = [json.loads(e["data"])["trackingId"] for e in alerts]
    # Resuming from the cursor given gets the rest, each once.
    async with (
        httpx.AsyncClient(base_url=f"http://{server.http_address}", timeout=30) as http,
        http.stream("GET", "/v1/alerts:watch", params={"after": cursor}) as reply,
    ):
        event: dict[str, str] = {}
        async for line in reply.aiter_lines():
            if line and not line.startswith(":"):
                name, _, value = line.partition(": ")
                event[name] = value
            elif not line and event:
                assert event["event"] == "alert", event
                got.append(json.loads(event["data"])["trackingId"])
                event = {}
                if len(got) >= ALERTS:
                    break
    assert got == ids
    _logged_once_without_traceback(caplog)


async def test_a_stalled_ndjson_export_ends_with_its_cursor(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    events = [
        analytics_pb2.TrackEventRequest(
            event_name="big",
            event_id=f"e{n:04d}",
            properties={f"k{j}": "x" * 7000 for j in range(4)},
        )
        for n in range(EVENTS)
    ]
    async with grpc.aio.insecure_channel(server.address, options=CHANNEL_OPTIONS) as channel:
        stub = analytics_pb2_grpc.AnalyticsServiceStub(channel)
        for n in range(0, EVENTS, 10):
            batch = analytics_pb2.EventBatch(events=events[n : n + 10])
            ack = await stub.TrackEvents(batch, timeout=10)
            assert ack.accepted == 10, ack
    sock = _stalled_socket(
        server.http_address, b"GET /v1/events:export HTTP/1.1\r\nhost: test\r\n\r\n"
    )
    with sock:
        await asyncio.sleep(STALL * 4)
        head, body = _dechunk(await asyncio.to_thread(_read_all, sock))
    assert head.startswith(b"HTTP/1.1 200"), head
    lines = [json.loads(line) for line in body.splitlines()]
    last = lines[-1]
    assert last["error"]["code"] == 8, last
    exported = lines[:-1]
    assert 0 < len(exported) < EVENTS
    assert last["cursor"] == exported[-1]["cursor"]
    got = [e["event"]["eventId"] for e in exported]
    async with httpx.AsyncClient(base_url=f"http://{server.http_address}", timeout=30) as http:
        reply = await http.get("/v1/events:export", params={"after": last["cursor"]})
    got += [json.loads(line)["event"]["eventId"] for line in reply.text.splitlines()]
    assert got == [e.event_id for e in events]
    _logged_once_without_traceback(caplog)


async def _stalled_watch(server: Server, pause: float) -> tuple[list[str], str, Any]:
    """A gRPC watch from the start that reads nothing for ``pause`` s, then all it can:
    the alerts' ids, the last cursor, and the error that ended it."""
    # No BDP probing: the stream's window stays small, so not reading stalls the server.
    options = (*CHANNEL_OPTIONS, ("grpc.http2.bdp_probe", 0))
    async with grpc.aio.insecure_channel(server.address, options=options) as channel:
        stub = telemetry_pb2_grpc.TelemetryServiceStub(channel)
        call: Any = stub.WatchAlerts(telemetry_pb2.WatchAlertsRequest(from_start=True))
        await call.initial_metadata()
        await asyncio.sleep(pause)
        got: list[str] = []
        cursor = ""
        while True:
            try:
                alert = await asyncio.wait_for(call.read(), 60)
            except grpc.aio.AioRpcError as error:
                return got, cursor, error
            assert alert is not grpc.aio.EOF, "a watch never ends by itself"
            got.append(alert.tracking_id)
            cursor = alert.cursor


async def _resume(server: Server, got: list[str], cursor: str) -> None:
    async with grpc.aio.insecure_channel(server.address, options=CHANNEL_OPTIONS) as channel:
        stub = telemetry_pb2_grpc.TelemetryServiceStub(channel)
        resumed: Any = stub.WatchAlerts(telemetry_pb2.WatchAlertsRequest(after=cursor))
        while len(got) < ALERTS:
            alert = await asyncio.wait_for(resumed.read(), 30)
            got.append(alert.tracking_id)
        resumed.cancel()


async def test_a_stalled_grpc_watcher_gets_resource_exhausted_with_its_cursor(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    ids = await _report_many(server)
    got, cursor, error = await _stalled_watch(server, pause=STALL * 4)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error
    assert 0 < len(got) < ALERTS, "the whole backlog fit the buffers: no stall tested"
    assert repr(cursor) in (error.details() or "")
    await _resume(server, got, cursor)
    assert got == ids
    _logged_once_without_traceback(caplog)
