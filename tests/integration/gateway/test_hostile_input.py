"""Hostile request bodies and framings: refused with a 4xx/501 and one quiet line at most."""

from __future__ import annotations

import asyncio
import gzip
import logging
import sqlite3

import httpx
import orjson
import pytest

from eventwire.runtime.server import Server
from tests.support.gateway import status_of

JSON = {"content-type": "application/json"}
DEPTH = 1000


def rows(db_url: str) -> int:
    with sqlite3.connect(db_url.removeprefix("sqlite:///")) as conn:
        events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        alerts = conn.execute("SELECT count(*) FROM alerts").fetchone()[0]
    return int(events) + int(alerts)


def nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


NESTED_BODIES = {
    "/v1/events": nested(DEPTH),
    "/v1/events:batch": b'{"events": [' + nested(DEPTH) + b"]}",
    "/v1/alerts": b'{"deviceId": "d", "alertType": "t", "severity": 1, "attributes": '
    + nested(DEPTH)
    + b"}",
}


@pytest.mark.parametrize("path", sorted(NESTED_BODIES))
async def test_deeply_nested_json_is_400_logged_quietly(
    http: httpx.AsyncClient, db_url: str, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    body = NESTED_BODIES[path]
    assert 6_000 <= len(body) <= 7_200  # the size of the reported attack
    with caplog.at_level(logging.DEBUG):
        for _ in range(3):
            r = await http.post(path, content=body, headers=JSON)
            assert "nests" in status_of(r, 400, 3)["message"]
    ours = [rec for rec in caplog.records if rec.name.startswith("eventwire")]
    assert len(ours) <= 3, [rec.getMessage() for rec in ours]
    assert not [rec for rec in caplog.records if rec.exc_info], "no traceback for bad input"
    assert rows(db_url) == 0


async def test_brackets_inside_strings_are_not_nesting(http: httpx.AsyncClient) -> None:
    deep_looking = "[{" * 600
    r = await http.post(
        "/v1/events", json={"eventName": "brackets", "properties": {"p": deep_looking}}
    )
    assert r.status_code == 200, r.text


async def test_nesting_at_the_limit_is_parsed_and_refused_by_the_schema(
    http: httpx.AsyncClient,
) -> None:
    # 32 levels: the parser runs and the protobuf mapping names the problem.
    r = await http.post("/v1/events", content=nested(32), headers=JSON)
    message = status_of(r, 400, 3)["message"]
    assert "nests" not in message
    assert "TrackEventRequest" in message


async def _exchange(server: Server, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.http_port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()


def _chunked(body: bytes) -> bytes:
    return f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"


def _post(coding: bytes, body: bytes) -> bytes:
    return (
        b"POST /v1/events HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"connection: close\r\ntransfer-encoding: " + coding + b"\r\n\r\n" + _chunked(body)
    )


@pytest.mark.parametrize("coding", [b"gzip, chunked", b"deflate,chunked", b"identity, chunked"])
async def test_a_transfer_coding_beside_chunked_is_refused(
    server: Server, db_url: str, coding: bytes
) -> None:
    body = gzip.compress(orjson.dumps({"eventName": "zipped"}))
    reply = await _exchange(server, _post(coding, body))
    head, _, payload = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 501 "), reply[:200]
    status = orjson.loads(payload)
    assert status["code"] == 12  # UNIMPLEMENTED
    assert "transfer-encoding" in status["message"]
    assert rows(db_url) == 0


async def test_chunked_twice_is_refused_by_the_parser(server: Server, db_url: str) -> None:
    reply = await _exchange(server, _post(b"chunked, chunked", orjson.dumps({"eventName": "x"})))
    assert reply.startswith(b"HTTP/1.1 400 "), reply[:200]
    assert rows(db_url) == 0


async def test_plain_chunked_is_served(server: Server, db_url: str) -> None:
    reply = await _exchange(server, _post(b"Chunked", orjson.dumps({"eventName": "chunks"})))
    assert reply.startswith(b"HTTP/1.1 200 "), reply[:200]
    assert rows(db_url) == 1
