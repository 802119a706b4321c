"""The console's live tail on a real server: from now, filtered by user in the store, and
resumable from its start cursor or any row's, so pausing the Live page loses nothing."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.support.gateway import status_of, violations_of

TAIL = "/console/api/events:tail"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Both stores: the user filter and the start cursor are each store's to get right."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("pg_url")
        return url
    return f"sqlite:///{tmp_path / 'events.db'}"


@contextlib.asynccontextmanager
async def tail(http: httpx.AsyncClient, **params: str) -> AsyncIterator[AsyncIterator[Any]]:
    async with http.stream("GET", TAIL, params=params) as reply:
        assert reply.status_code == 200, await reply.aread()
        assert reply.headers["content-type"] == "application/x-ndjson"

        async def lines() -> AsyncIterator[Any]:
            async for line in reply.aiter_lines():
                if line:
                    yield orjson.loads(line)

        yield lines()


async def track(http: httpx.AsyncClient, name: str, user: str) -> None:
    reply = await http.post("/v1/events", json={"eventName": name, "userId": user})
    assert reply.status_code == 200, reply.text


async def test_the_tail_starts_now_keeps_one_user_and_resumes_without_a_gap(
    http: httpx.AsyncClient,
) -> None:
    await track(http, "before", "u1")  # committed before the tail: not in it
    async with tail(http, user_id="u1") as lines:
        start = (await anext(lines))["start"]
        await track(http, "a", "u2")
        await track(http, "b", "u1")
        first = await anext(lines)
        assert (first["event"]["eventName"], first["event"]["userId"]) == ("b", "u1")
    # Closed (the page paused): what commits meanwhile arrives on resume, once.
    await track(http, "c", "u1")
    await track(http, "d", "u1")
    async with tail(http, user_id="u1", after=first["cursor"]) as lines:
        assert (await anext(lines))["start"]
        names = [(await anext(lines))["event"]["eventName"] for _ in range(2)]
    assert names == ["c", "d"]
    # Paused before any row arrived: the start cursor is the place to resume from.
    async with tail(http, user_id="u1", after=start) as lines:
        await anext(lines)
        names = [(await anext(lines))["event"]["eventName"] for _ in range(3)]
    assert names == ["b", "c", "d"]


async def test_a_cursor_is_bound_to_the_tails_filter(http: httpx.AsyncClient) -> None:
    async with tail(http, user_id="u1") as lines:
        start = (await anext(lines))["start"]
    reply = await http.get(TAIL, params={"user_id": "u2", "after": start})
    assert "after" in [name for name, _ in violations_of(status_of(reply, 400, 3))]
