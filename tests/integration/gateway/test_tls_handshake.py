"""The TLS gateway's handshake obeys --handshake-timeout and counts against the connection cap."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from eventwire.runtime.server import Server
from eventwire.testing import running_server
from tests.support.security import Pki, pki  # noqa: F401 - fixture

HANDSHAKE_TIMEOUT = 1.0
CAP = 4


@pytest.fixture
async def tls_gateway(pki: Pki) -> AsyncIterator[Server]:  # noqa: F811 - the fixture
    async with running_server(
        tls_cert=str(pki.server_cert),
        tls_key=str(pki.server_key),
        handshake_timeout=HANDSHAKE_TIMEOUT,
        http_max_connections=CAP,
    ) as srv:
        yield srv


async def _healthz(server: Server, pki: Pki) -> int:  # noqa: F811 - the fixture
    context = ssl.create_default_context(cafile=str(pki.ca))
    async with httpx.AsyncClient(verify=context, timeout=10) as http:
        reply = await http.get(f"https://127.0.0.1:{server.http_port}/healthz")
        return reply.status_code


async def test_stalled_handshakes_are_closed_and_count_against_the_cap(
    tls_gateway: Server,
    pki: Pki,  # noqa: F811 - the fixture
) -> None:
    assert await _healthz(tls_gateway, pki) == 200
    opened = time.monotonic()
    # Connections that never send a ClientHello fill the cap...
    stalled = [
        await asyncio.open_connection("127.0.0.1", tls_gateway.http_port) for _ in range(CAP)
    ]
    await asyncio.sleep(0.2)  # let the server accept them all
    try:
        # ...so a real client is turned away (503, as at the cap of plain HTTP)...
        assert await _healthz(tls_gateway, pki) == 503
        # ...and the server closes each of them after the handshake timeout, not
        # asyncio's 60 s default.
        for reader, _ in stalled:
            assert await asyncio.wait_for(reader.read(), 20) == b""
        closed_after = time.monotonic() - opened
        assert closed_after < 20 * HANDSHAKE_TIMEOUT, closed_after
    finally:
        for _, writer in stalled:
            writer.close()
    # Their slots are free again (the count may outlive them by a moment).
    deadline = time.monotonic() + 20
    while (status := await _healthz(tls_gateway, pki)) != 200:
        assert status == 503
        assert time.monotonic() < deadline, "the slots were never freed"
        await asyncio.sleep(0.2)
