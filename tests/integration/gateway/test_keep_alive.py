"""An answer sent before the request body was read keeps its promise about the connection.

The gateway answers some requests without reading their body (no route, a
refused token, a wrong content type). If it then closes a connection whose
answer did not say ``connection: close``, a client that reuses it (httpx,
any pool) may already be sending its next request and reads a disconnect
instead of an answer. Here a raw socket holds the body back until the answer
is in, which is the order that made that happen now and then under load:
a small body is read and dropped and the connection carries on; any other body
is answered with ``connection: close``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import orjson
import pytest

from eventwire.frontends.http.protocol import DRAIN_BYTES
from eventwire.runtime.server import Server
from eventwire.testing import running_server

# A guard against a hung test, not a measurement.
WAIT = 10.0

EVENT = b'{"eventName":"e"}'


class Reply:
    def __init__(self, status: int, headers: dict[bytes, bytes], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def closes(self) -> bool:
        return self.headers.get(b"connection", b"").lower() == b"close"


Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@asynccontextmanager
async def _connect(port: int) -> AsyncIterator[Conn]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()
        await writer.wait_closed()


async def _send(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(data)
    await writer.drain()


async def _reply(reader: asyncio.StreamReader) -> Reply:
    """One response; the gateway always sends content-length."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    status_line, *lines = head[:-4].split(b"\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    body = await asyncio.wait_for(reader.readexactly(int(headers[b"content-length"])), WAIT)
    return Reply(int(status_line.split()[1]), headers, body)


async def _eof(reader: asyncio.StreamReader) -> bytes:
    """What the server still sends before it closes (b"" when it just closes)."""
    return await asyncio.wait_for(reader.read(), WAIT)


def _post(path: bytes, *headers: bytes) -> bytes:
    lines = [b"POST " + path + b" HTTP/1.1", b"host: x", b"content-type: application/json"]
    return b"\r\n".join([*lines, *headers]) + b"\r\n\r\n"


HEALTHZ = b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n"


async def test_an_answer_before_a_small_body_keeps_the_connection(server: Server) -> None:
    async with _connect(server.http_port) as (reader, writer):
        await _send(writer, _post(b"/nowhere", b"content-length: %d" % len(EVENT)))
        early = await _reply(reader)  # the 404 needs no body; it is not sent yet
        assert early.status == 404
        assert not early.closes
        # The body is read and dropped, not taken for a request; what follows it is
        # served, pipelined or not.
        await _send(writer, EVENT + HEALTHZ + HEALTHZ)
        for _ in range(2):
            served = await _reply(reader)
            assert (served.status, orjson.loads(served.body)) == (200, {"status": "SERVING"})
        await _send(writer, HEALTHZ)
        assert (await _reply(reader)).status == 200


async def test_a_body_held_past_an_early_answer_keeps_the_connection_in_pieces(
    server: Server,
) -> None:
    async with _connect(server.http_port) as (reader, writer):
        await _send(writer, _post(b"/nowhere", b"content-length: %d" % len(EVENT)))
        assert (await _reply(reader)).status == 404
        for byte in EVENT:
            await _send(writer, bytes([byte]))
        await _send(writer, _post(b"/v1/events", b"content-length: %d" % len(EVENT)) + EVENT)
        stored = await _reply(reader)
        assert stored.status == 200, stored.body
        assert not stored.closes


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        pytest.param(
            (b"transfer-encoding: chunked",),
            b"%x\r\n%s\r\n0\r\n\r\n" % (len(EVENT), EVENT),
            id="chunked",
        ),
        pytest.param(
            (b"content-length: %d" % (DRAIN_BYTES + 1),),
            b" " * (DRAIN_BYTES + 1),
            id="too-big-to-drain",
        ),
        pytest.param(
            (b"expect: 100-continue", b"content-length: %d" % len(EVENT)),
            EVENT,
            id="waiting-for-100-continue",
        ),
    ],
)
async def test_an_answer_before_a_body_it_will_not_read_says_close(
    server: Server, headers: tuple[bytes, ...], body: bytes
) -> None:
    async with _connect(server.http_port) as (reader, writer):
        await _send(writer, _post(b"/nowhere", *headers))
        early = await _reply(reader)
        assert early.status == 404
        assert early.closes, early.headers
        # Dropped while the server lingers; the half-close ends its lingering at once.
        await _send(writer, body + HEALTHZ)
        writer.write_eof()
        assert await _eof(reader) == b""  # the request after the body was not served


async def test_a_chunked_body_read_before_the_answer_keeps_the_connection(
    server: Server,
) -> None:
    async with _connect(server.http_port) as (reader, writer):
        chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(EVENT), EVENT)
        await _send(writer, _post(b"/v1/events", b"transfer-encoding: chunked") + chunked)
        stored = await _reply(reader)
        assert stored.status == 200, stored.body
        assert not stored.closes
        await _send(writer, HEALTHZ)
        assert (await _reply(reader)).status == 200


async def test_a_body_that_stalls_after_an_early_answer_is_closed_at_the_body_timeout(
    tmp_path: Path,
) -> None:
    async with (
        running_server(store=f"sqlite:///{tmp_path / 'e.db'}", http_body_timeout=0.2) as srv,
        _connect(srv.http_port) as (reader, writer),
    ):
        await _send(writer, _post(b"/nowhere", b"content-length: %d" % len(EVENT)))
        assert (await _reply(reader)).status == 404
        await _send(writer, EVENT[:3])  # and never the rest
        assert await _eof(reader) == b""
