"""Every gateway route in-process (ASGI transport, real service and SQLite file, no socket)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from eventwire.security.auth import Authenticator
from eventwire.security.limits import RateLimiter
from tests.support.asgi import count_rows, gateway_client
from tests.support.gateway import status_of, violations_of
from tests.support.security import ACME, ACME_READER, ACME_WRITER, TOKENS, token_file_text

JSON = {"content-type": "application/json"}


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway_client(tmp_path / "e.db") as client:
        yield client


async def test_track_event_then_count_it(http: httpx.AsyncClient, tmp_path: Path) -> None:
    r = await http.post("/v1/events", json={"eventName": "signup", "userId": "u1"})
    assert r.status_code == 200, r.text
    assert r.json()["success"] is True
    assert count_rows(tmp_path / "e.db", "events") == 1
    r = await http.get("/v1/events:count", params={"event_name": "signup", "userId": "u1"})
    assert r.json()["count"] == "1"


async def test_batch_stores_the_valid_and_names_the_invalid(
    http: httpx.AsyncClient, tmp_path: Path
) -> None:
    r = await http.post(
        "/v1/events:batch", json={"events": [{"eventName": "a"}, {"eventName": ""}]}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == 1
    assert count_rows(tmp_path / "e.db", "events") == 1


async def test_alert_round_trip_and_unknown_alert(http: httpx.AsyncClient) -> None:
    r = await http.post(
        "/v1/alerts", json={"deviceId": "d1", "alertType": "heat", "severity": "SEVERITY_WARNING"}
    )
    assert r.status_code == 200, r.text
    tracking_id = r.json()["trackingId"]
    r = await http.get(f"/v1/alerts/{tracking_id}")
    assert r.json()["deviceId"] == "d1"
    status_of(await http.get("/v1/alerts/nope"), 404, 5)
    assert (await http.get("/v1/alerts", params={"page_size": "5"})).status_code == 200


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("start=x", "start"),
        ("end=99999999999999999999", "end"),
        ("nope=1", "nope"),
        ("start=1&start=2", "start"),
    ],
)
async def test_count_query_is_parsed_as_the_read_routes_parse_theirs(
    http: httpx.AsyncClient, query: str, field: str
) -> None:
    body = status_of(await http.get(f"/v1/events:count?{query}"), 400, 3)
    assert field in [f for f, _ in violations_of(body)]


async def test_bad_bodies_are_4xx_not_500(http: httpx.AsyncClient, tmp_path: Path) -> None:
    deep = b'{"a":' * 1000 + b"1" + b"}" * 1000
    assert (
        "nests"
        in status_of(await http.post("/v1/events", content=deep, headers=JSON), 400, 3)["message"]
    )
    status_of(await http.post("/v1/events", content=b"{", headers=JSON), 400, 3)
    status_of(
        await http.post("/v1/events", content=b"{}", headers={"content-type": "text/csv"}), 415, 3
    )
    status_of(await http.put("/v1/events", content=b"{}"), 405, 12)
    status_of(await http.get("/nowhere"), 404, 5)
    assert count_rows(tmp_path / "e.db", "events") == 0


async def test_probes_and_document_are_open(http: httpx.AsyncClient) -> None:
    assert (await http.get("/healthz")).json() == {"status": "SERVING"}
    assert (await http.get("/readyz")).status_code == 200
    assert "paths" in (await http.get("/openapi.json")).json()


async def test_scopes_come_from_the_operations_table(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(token_file_text(TOKENS))
    async with gateway_client(tmp_path / "e.db", auth=Authenticator(tokens)) as http:
        status_of(await http.post("/v1/events", json={"eventName": "x"}), 401, 16)
        # A write-only token may write, not read; a read-only one the other way round.
        writer = {"authorization": f"Bearer {ACME_WRITER}"}
        reader = {"authorization": f"Bearer {ACME_READER}"}
        both = {"authorization": f"Bearer {ACME}"}
        status_of(await http.post("/v1/events", json={"eventName": "x"}, headers=reader), 403, 7)
        assert (
            await http.post("/v1/events", json={"eventName": "x"}, headers=writer)
        ).status_code == 200
        status_of(await http.get("/v1/events:count", headers=writer), 403, 7)
        status_of(await http.get("/v1/alerts", headers=writer), 403, 7)
        assert (await http.get("/v1/events:count", headers=both)).status_code == 200
        twice = [("authorization", f"Bearer {ACME}"), ("authorization", f"Bearer {ACME}")]
        status_of(await http.get("/v1/events:count", headers=twice), 401, 16)
        assert (await http.get("/healthz")).status_code == 200


async def test_a_batch_is_charged_per_event(tmp_path: Path) -> None:
    limiter = RateLimiter(rate=0.001, burst=3)
    async with gateway_client(tmp_path / "e.db", limiter=limiter) as http:
        events = [{"eventName": f"e{n}"} for n in range(3)]
        assert (await http.post("/v1/events:batch", json={"events": events})).status_code == 200
        r = await http.post("/v1/events", json={"eventName": "one-more"})
        status_of(r, 429, 8)
        assert r.headers["retry-after"]
