"""HTTP/2 without TLS on the gateway's port keeps the listener's limits: settings announced,
Rapid Reset cut off, idle connections closed, oversized headers refused, HTTP/1.1 unchanged."""

from __future__ import annotations

import asyncio

import h2.errors
import h2.settings
import httpx

from eventwire.runtime.server import Server
from eventwire.testing import running_server
from eventwire.testing._abuse_h2 import RawH2

TRACK = "/analytics.AnalyticsService/TrackEvent"


def _headers(path: str = TRACK, **extra: str) -> list[tuple[str, str]]:
    return [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "localhost"),
        ("content-type", "application/proto"),
        *extra.items(),
    ]


def _settings_and_reset_flood(address: str) -> tuple[dict[int, int], int | None, bool]:
    with RawH2(address) as client:
        client.poll(0.5)
        settings = dict(client.seen.settings)
        for _ in range(400):
            stream = client.conn.get_next_available_stream_id()
            client.conn.send_headers(stream, _headers())
            client.conn.reset_stream(stream, h2.errors.ErrorCodes.CANCEL)
            client.flush()
            client.poll(0)
            if client.seen.goaway is not None or client.seen.closed:
                break
        client.wait_for("closed", 5)
        goaway = client.seen.goaway
        code = None if goaway is None or goaway.error_code is None else int(goaway.error_code)
        return settings, code, client.seen.closed


async def test_settings_and_rapid_reset(server: Server) -> None:
    address = f"127.0.0.1:{server.http_port}"
    settings, code, closed = await asyncio.to_thread(_settings_and_reset_flood, address)
    assert settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] == 100
    assert settings[h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE] == 16 * 1024
    assert code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
    assert closed
    # The server carries on, on both protocols.
    async with httpx.AsyncClient(base_url=f"http://{address}") as http1:
        assert (await http1.post("/v1/events", json={"eventName": "after"})).status_code == 200
    async with httpx.AsyncClient(base_url=f"http://{address}", http1=False, http2=True) as http2:
        assert (await http2.get("/healthz")).status_code == 200


def _oversized_headers(address: str) -> tuple[bool, int]:
    with RawH2(address) as client:
        client.poll(0.5)  # take (and acknowledge) the server's settings first
        stream = client.conn.get_next_available_stream_id()
        client.conn.send_headers(stream, _headers(big="x" * 20_000), end_stream=True)
        client.flush()
        client.wait_for("closed", 5)
        return client.seen.closed, client.seen.resets


async def test_oversized_headers_are_refused(server: Server) -> None:
    closed, resets = await asyncio.to_thread(_oversized_headers, f"127.0.0.1:{server.http_port}")
    assert closed or resets


def _idle(address: str) -> bool:
    with RawH2(address) as client:
        return client.wait_for("goaway", 5) and client.wait_for("closed", 5)


async def test_an_idle_http2_connection_is_closed() -> None:
    async with running_server(http_idle_timeout=0.5) as srv:
        assert await asyncio.to_thread(_idle, f"127.0.0.1:{srv.http_port}")
