"""Every gateway route, success and failure, against a real server over real HTTP."""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest

from eventwire._rpc import OPERATIONS
from eventwire.frontends.http.errors import HTTP_ONLY
from eventwire.ingest.service import MAX_BATCH_EVENTS
from eventwire.testing import running_server
from tests.conftest import refuse_inserts
from tests.support.bad_inputs import NOW_MS
from tests.support.gateway import status_of, violations_of

JSON = {"content-type": "application/json"}


def rows(db_url: str, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db_url.removeprefix("sqlite:///")) as conn:
        return conn.execute(sql).fetchall()


# -- POST /v1/events -------------------------------------------------------------------


async def test_track_event_stores_it_and_replies_with_every_field(
    http: httpx.AsyncClient, db_url: str
) -> None:
    r = await http.post(
        "/v1/events",
        json={
            "eventName": "signup",
            "userId": "u1",
            "timestamp": str(NOW_MS - 5000),
            "properties": {"plan": "pro"},
        },
    )
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    reply = r.json()
    assert uuid.UUID(reply.pop("eventId")).version == 7
    assert reply == {
        "success": True,
        "errorMessage": "",
        "duplicate": False,
        "accepted": "0",
        "duplicates": "0",
        # No tracking plan is in force: nothing judged the event (docs/tracking-plans.md).
        "outcome": "OUTCOME_UNSPECIFIED",
        "violations": [],
        "planVersion": "0",
        "quarantined": "0",
        "flagged": [],
    }
    assert rows(db_url, "SELECT event_name, user_id, ts, properties FROM events") == [
        ("signup", "u1", NOW_MS - 5000, '{"plan":"pro"}')
    ]


async def test_proto_field_names_and_numeric_int64_are_accepted(
    http: httpx.AsyncClient, db_url: str
) -> None:
    r = await http.post(
        "/v1/events", json={"event_name": "login", "user_id": "u2", "timestamp": NOW_MS}
    )
    assert r.status_code == 200, r.text
    assert rows(db_url, "SELECT event_name, user_id, ts FROM events") == [("login", "u2", NOW_MS)]


async def test_same_event_id_is_a_duplicate_stored_once(
    http: httpx.AsyncClient, db_url: str
) -> None:
    first = (await http.post("/v1/events", json={"eventName": "a", "eventId": "evt-1"})).json()
    again = (await http.post("/v1/events", json={"eventName": "b", "eventId": "evt-1"})).json()
    assert (first["duplicate"], again["duplicate"]) == (False, True)
    assert again["eventId"] == "evt-1"
    assert rows(db_url, "SELECT event_id, event_name FROM events") == [("evt-1", "a")]


async def test_charset_utf8_is_accepted(http: httpx.AsyncClient) -> None:
    r = await http.post(
        "/v1/events",
        content='{"eventName": "caf\u00e9"}'.encode(),
        headers={"content-type": "Application/JSON; charset=UTF-8"},
    )
    assert r.status_code == 200, r.text


class Unusable(NamedTuple):
    content: bytes
    headers: dict[str, str]
    http_status: int
    fragment: str


@pytest.mark.parametrize(
    "case",
    [
        Unusable(*case)
        for case in [
            (b'{"eventName": "x"', JSON, 400, "not valid JSON"),
            (b"", JSON, 400, "empty"),
            (b'["eventName"]', JSON, 400, "JSON object"),
            (b'"just a string"', JSON, 400, "JSON object"),
            (b'{"eventName": "\xff\xfe"}', JSON, 400, "not valid UTF-8"),
            (b'{"eventName": "x", "timestamp": NaN}', JSON, 400, "NaN is not JSON"),
            (b'{"eventName": "\\ud800x"}', JSON, 400, "unpaired surrogate"),
            (b'{"eventName": "x", "colour": "red"}', JSON, 400, "colour"),
            (b'{"eventName": 5}', JSON, 400, "eventName"),
            (b'{"eventName": "x", "timestamp": 1.5}', JSON, 400, "timestamp"),
            (b'{"eventName": "x", "timestamp": "soon"}', JSON, 400, "timestamp"),
            (b'{"eventName": "x", "timestamp": 99999999999999999999}', JSON, 400, "timestamp"),
            (b'{"eventName": "x", "properties": {"k": 1}}', JSON, 400, "properties"),
            (b'{"eventName": "x", "properties": ["k"]}', JSON, 400, "properties"),
            (b'{"eventName": "x"}', {"content-type": "text/plain"}, 415, "application/json"),
            (b'{"eventName": "x"}', {}, 415, "application/json"),
            (
                b'{"eventName": "x"}',
                {"content-type": "application/json; charset=latin-1"},
                415,
                "UTF-8",
            ),
        ]
    ],
    ids=[
        "truncated-json",
        "empty-body",
        "array",
        "string",
        "invalid-utf8",
        "nan",
        "lone-surrogate",
        "unknown-field",
        "wrong-type",
        "fractional-int64",
        "non-numeric-int64",
        "int64-overflow",
        "non-string-property",
        "properties-not-object",
        "text-plain",
        "no-content-type",
        "latin-1",
    ],
)
async def test_unusable_bodies_are_4xx_with_a_clear_message(
    http: httpx.AsyncClient, db_url: str, case: Unusable
) -> None:
    r = await http.post("/v1/events", content=case.content, headers=case.headers)
    body = status_of(r, case.http_status, 3)
    assert case.fragment in body["message"]
    assert rows(db_url, "SELECT count(*) FROM events") == [(0,)]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/events", '{"eventName": "a", "eventName": "b"}', "eventName"),
        ("/v1/events", '{"eventName": "a", "event_name": "b"}', "event_name"),  # one field twice
        (
            "/v1/events",
            '{"eventName": "a", "properties": {"plan": "pro", "plan": "free"}}',
            "properties.plan",
        ),
        ("/v1/alerts", '{"deviceId": "d", "alertType": "t", "deviceId": "e"}', "deviceId"),
        (
            "/v1/events:batch",
            '{"events": [{"eventName": "a"}, {"eventName": "b", "userId": "u", "userId": "v"}]}',
            "events[1].userId",
        ),
        ("/v1/events:batch", '{"events": [], "events": [{"eventName": "a"}]}', "events"),
    ],
    ids=["top", "proto-and-json-name", "nested", "alert", "in-batch", "batch-envelope"],
)
async def test_a_repeated_json_key_is_400_naming_it(
    http: httpx.AsyncClient, db_url: str, path: str, body: str, field: str
) -> None:
    r = await http.post(path, content=body.encode(), headers=JSON)
    status = status_of(r, 400, 3)
    assert violations_of(status) == [(field, "duplicate key")]
    assert repr(field.rpartition(".")[2]) in status["message"]
    assert rows(db_url, "SELECT count(*) FROM events") == [(0,)]


async def test_escapes_and_escaped_backslashes_are_still_json(http: httpx.AsyncClient) -> None:
    # A surrogate pair (what json.dumps writes for an emoji) and a literal "\ud800".
    r = await http.post(
        "/v1/events", content=b'{"eventName": "\\ud83d\\ude00 \\\\ud800"}', headers=JSON
    )
    assert r.status_code == 200, r.text


async def test_invalid_event_lists_every_violation(http: httpx.AsyncClient, db_url: str) -> None:
    r = await http.post("/v1/events", json={"eventName": " ", "timestamp": 5, "eventId": "a b"})
    body = status_of(r, 400, 3)
    fields = [field for field, _ in violations_of(body)]
    assert fields == ["event_name", "timestamp", "event_id"]
    assert body["message"].startswith("invalid event_name")
    assert rows(db_url, "SELECT count(*) FROM events") == [(0,)]


# -- POST /v1/events:batch --------------------------------------------------------------


async def test_batch_stores_valid_events_and_rejects_invalid_ones(
    http: httpx.AsyncClient, db_url: str
) -> None:
    await http.post("/v1/events", json={"eventName": "old", "eventId": "seen"})
    r = await http.post(
        "/v1/events:batch",
        json={
            "events": [
                {"eventName": "a", "eventId": "b1"},
                {"eventName": "", "userId": "   "},
                {"eventName": "b", "eventId": "seen"},
                {"event_name": "c", "timestamp": NOW_MS},
                {"eventName": "a", "eventId": "b1"},
                {"eventName": "d", "eventId": "bad id"},
            ]
        },
    )
    assert r.status_code == 200, r.text
    assert r.json() == {
        "sequence": "0",
        "accepted": 2,
        "duplicates": 2,
        "rejected": 2,
        "quarantined": 0,
        "planVersion": "0",
        "flagged": [],
        "rejections": [
            {
                "index": 1,
                "eventId": "",
                "violations": [
                    {"field": "events[1].event_name", "description": "must not be empty or blank"},
                    {
                        "field": "events[1].user_id",
                        "description": "must not be blank (send it empty instead)",
                    },
                ],
            },
            {
                "index": 5,
                "eventId": "bad id",
                "violations": [
                    {
                        "field": "events[5].event_id",
                        "description": "must be printable ASCII without spaces; "
                        "got U+0020 SPACE at index 3",
                    }
                ],
            },
        ],
    }
    stored = rows(db_url, "SELECT event_name FROM events ORDER BY event_name")
    assert stored == [("a",), ("c",), ("old",)]


@pytest.mark.parametrize("body", [{"events": []}, {}, {"events": None}])
async def test_empty_batch_stores_nothing(
    http: httpx.AsyncClient, db_url: str, body: dict[str, object]
) -> None:
    r = await http.post("/v1/events:batch", json=body)
    assert r.json() == {
        "sequence": "0",
        "accepted": 0,
        "duplicates": 0,
        "rejected": 0,
        "quarantined": 0,
        "planVersion": "0",
        "flagged": [],
        "rejections": [],
    }
    assert rows(db_url, "SELECT count(*) FROM events") == [(0,)]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"events": [{"eventName": "ok"}], "extra": 1}, "extra"),
        ({"events": {"eventName": "x"}}, "array"),
        ({"events": [{"eventName": "ok"}, {"eventName": "x", "bogus": 1}]}, "events[1]"),
        ({"events": [{"eventName": "ok"}, "not an object"]}, "events[1]"),
        ([{"eventName": "ok"}], "JSON object"),
    ],
    ids=["unknown-top-level", "events-not-array", "unknown-field", "not-object", "bare-array"],
)
async def test_malformed_batch_is_400_and_stores_nothing(
    http: httpx.AsyncClient, db_url: str, body: object, fragment: str
) -> None:
    r = await http.post("/v1/events:batch", json=body)
    assert fragment in status_of(r, 400, 3)["message"]
    assert rows(db_url, "SELECT count(*) FROM events") == [(0,)]


async def test_batch_over_the_event_limit_is_refused(http: httpx.AsyncClient, db_url: str) -> None:
    events = [{"eventName": "e"}] * (MAX_BATCH_EVENTS + 1)
    r = await http.post("/v1/events:batch", json={"events": events})
    body = status_of(r, 400, 3)
    assert [field for field, _ in violations_of(body)] == ["events"]
    assert str(MAX_BATCH_EVENTS) in body["message"]
    assert rows(db_url, "SELECT count(*) FROM events") == [(0,)]


# -- GET /v1/events:count -----------------------------------------------------------------


async def test_count_filters_by_every_parameter(http: httpx.AsyncClient) -> None:
    events = [
        {"eventName": "view", "userId": "u1", "timestamp": NOW_MS - 3000},
        {"eventName": "view", "userId": "u2", "timestamp": NOW_MS - 2000},
        {"eventName": "buy", "userId": "u1", "timestamp": NOW_MS - 1000},
    ]
    r = await http.post("/v1/events:batch", json={"events": events})
    assert r.json()["accepted"] == 3

    async def count(params: dict[str, str | int]) -> str:
        r = await http.get("/v1/events:count", params=params)
        assert r.status_code == 200, r.text
        value: str = r.json()["count"]
        return value

    assert await count({}) == "3"
    assert await count({"event_name": "view"}) == "2"
    assert await count({"eventName": "view", "userId": "u1"}) == "1"
    assert await count({"user_id": "u1"}) == "2"
    assert await count({"start": NOW_MS - 2000}) == "2"
    assert await count({"start": NOW_MS - 3000, "end": NOW_MS - 2000}) == "1"
    assert await count({"event_name": "nothing"}) == "0"
    # Bounds in any unit of timestamp; an empty range counts nothing.
    assert await count({"start": (NOW_MS - 3000) * 1_000_000, "end": NOW_MS * 1000}) == "3"
    assert await count({"start": NOW_MS, "end": NOW_MS - 3000}) == "0"


@pytest.mark.parametrize(
    ("query", "violations"),
    [
        ("start=soon", [("start", "must be a 64-bit integer, got 'soon'")]),
        ("end=1.5", [("end", "must be a 64-bit integer, got '1.5'")]),
        ("start=99999999999999999999", [("start", "must be a 64-bit integer")]),
        ("colour=red", [("colour", "unknown query parameter")]),
        ("event_name=a&eventName=b", [("event_name", "must be given at most once")]),
        ("start=-1", [("start", "must be a Unix epoch time >= 0 (0: unbounded), got -1")]),
    ],
    ids=["not-int", "fraction", "overflow", "unknown", "repeated", "negative"],
)
async def test_bad_count_query_is_400_naming_the_parameter(
    http: httpx.AsyncClient, query: str, violations: list[tuple[str, str]]
) -> None:
    r = await http.get(f"/v1/events:count?{query}")
    got = violations_of(status_of(r, 400, 3))
    assert len(got) == len(violations)
    for (field, description), (want_field, want_fragment) in zip(got, violations, strict=True):
        assert field == want_field
        assert want_fragment in description


# -- alerts ---------------------------------------------------------------------------


async def test_report_alert_then_get_it(http: httpx.AsyncClient) -> None:
    r = await http.post(
        "/v1/alerts",
        json={"deviceId": "dev-1", "alertType": "overheat", "timestamp": str(NOW_MS - 10)},
    )
    assert r.status_code == 200, r.text
    reply = r.json()
    assert reply["acknowledged"] is True
    assert set(reply) == {"acknowledged", "trackingId", "outcome", "violations", "planVersion"}
    tracking_id = reply["trackingId"]

    r = await http.get(f"/v1/alerts/{tracking_id}")
    assert r.status_code == 200, r.text
    alert = r.json()
    received_at = int(alert.pop("receivedAt"))
    assert alert == {
        "trackingId": tracking_id,
        "deviceId": "dev-1",
        "alertType": "overheat",
        "timestamp": str(NOW_MS - 10),
        "severity": "SEVERITY_UNSPECIFIED",
        "message": "",
        "attributes": {},
        "cursor": "",  # GetAlert carries no cursor; ListAlerts and WatchAlerts do
    }
    assert received_at >= NOW_MS


async def test_idempotency_key_returns_the_first_tracking_id(
    http: httpx.AsyncClient, db_url: str
) -> None:
    body = {"deviceId": "d", "alertType": "t", "idempotencyKey": "k-1"}
    first = (await http.post("/v1/alerts", json=body)).json()
    again = (await http.post("/v1/alerts", json=body)).json()
    assert first["trackingId"] == again["trackingId"]
    assert rows(db_url, "SELECT count(*) FROM alerts") == [(1,)]


async def test_unknown_alert_is_404_not_found(http: httpx.AsyncClient) -> None:
    body = status_of(await http.get(f"/v1/alerts/{uuid.uuid4()}"), 404, 5)
    assert body["details"] == []


async def test_alert_with_unknown_field_is_400(http: httpx.AsyncClient, db_url: str) -> None:
    r = await http.post("/v1/alerts", json={"deviceId": "d", "alertType": "t", "priority": 3})
    assert "priority" in status_of(r, 400, 3)["message"]
    assert rows(db_url, "SELECT count(*) FROM alerts") == [(0,)]


# -- health, OpenAPI, routing -------------------------------------------------------------


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
async def test_health_endpoints_serve(http: httpx.AsyncClient, path: str) -> None:
    r = await http.get(path)
    assert (r.status_code, r.json()) == (200, {"status": "SERVING"})


async def test_openapi_document_lists_every_route(http: httpx.AsyncClient) -> None:
    r = await http.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"] == "3.1.0"
    # Exactly the operations table's routes, and the open ones.
    routes = {path for op in OPERATIONS for _, path in op.routes}
    assert set(doc["paths"]) == routes | {"/healthz", "/readyz", "/openapi.json"}
    assert {"/v1/events", "/v1/events:batch", "/v1/alerts/{tracking_id}"} <= routes
    request = doc["components"]["schemas"]["TrackEventRequest"]
    assert set(request["properties"]) == {
        "eventName",
        "userId",
        "timestamp",
        "properties",
        "eventId",
    }
    assert request["additionalProperties"] is False


async def test_unknown_route_is_404_and_wrong_method_is_405(http: httpx.AsyncClient) -> None:
    status_of(await http.get("/v2/events"), 404, 5)
    status_of(await http.get("/v1/alerts/a/b"), 404, 5)
    r = await http.get("/v1/events")
    status_of(r, 405, 12)
    assert r.headers["allow"] == "POST"
    r = await http.delete(f"/v1/alerts/{uuid.uuid4()}")
    status_of(r, 405, 12)
    assert r.headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize(
    "path", ["/healthz", "/readyz", "/openapi.json", "/v1/events:count?event_name=x"]
)
async def test_head_answers_every_get_route_with_its_headers_and_no_body(
    http: httpx.AsyncClient, path: str
) -> None:
    got, head = await http.get(path), await http.head(path)
    assert head.status_code == got.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.headers["content-length"] == str(len(got.content))


async def test_head_of_an_unknown_alert_is_its_404(http: httpx.AsyncClient) -> None:
    r = await http.head(f"/v1/alerts/{uuid.uuid4()}")
    assert (r.status_code, r.content) == (404, b"")


CSV = {"content-type": "text/csv"}


@pytest.mark.parametrize(
    ("send", "http_status", "code"),
    [
        (lambda c: c.put("/v1/events", content=b"{}"), 405, 12),  # UNIMPLEMENTED
        (lambda c: c.post("/v1/events", content=b"{}", headers=CSV), 415, 3),
        (lambda c: c.post("/nowhere"), 404, 5),  # NOT_FOUND
    ],
    ids=["405", "415", "404"],
)
async def test_http_only_errors_carry_the_code_of_the_one_table(
    http: httpx.AsyncClient, send: Any, http_status: int, code: int
) -> None:
    assert HTTP_ONLY[http_status] == code
    status_of(await send(http), http_status, code)


# -- limits and failures ---------------------------------------------------------------


@pytest.fixture
async def small_body_http(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    db_url = f"sqlite:///{tmp_path / 'small.db'}"
    async with (
        running_server(store=db_url, http_max_body_bytes=1024) as srv,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{srv.http_port}", timeout=30) as client,
    ):
        yield client, db_url


async def test_oversize_body_is_413(small_body_http: tuple[httpx.AsyncClient, str]) -> None:
    http, db_url = small_body_http
    body = {"eventName": "big", "properties": {"blob": "x" * 2000}}
    r = await http.post("/v1/events", json=body)
    assert "1024 bytes" in status_of(r, 413, 8)["message"]  # RESOURCE_EXHAUSTED, as in gRPC

    async def chunks() -> AsyncIterator[bytes]:
        # No content-length: the limit must hold while the body streams in.
        yield b'{"eventName": "big", "properties": {"blob": "'
        for _ in range(4):
            yield b"x" * 500
        yield b'"}}'

    r = await http.post("/v1/events", content=chunks(), headers=JSON)
    status_of(r, 413, 8)
    # A body right at the limit still works.
    r = await http.post("/v1/events", json={"eventName": "fits"})
    assert r.status_code == 200
    assert rows(db_url, "SELECT event_name FROM events") == [("fits",)]


async def test_unexpected_failure_is_500_with_request_id_and_no_internals(
    http: httpx.AsyncClient, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A real failure inside the database: a trigger that aborts every insert.
    refuse_inserts(db_url, "secret internal detail")
    with caplog.at_level(logging.ERROR):
        r = await http.post(
            "/v1/events", json={"eventName": "x"}, headers={"x-request-id": "req-77"}
        )
    body = status_of(r, 500, 13)
    assert "secret" not in r.text
    assert "req-77" in body["message"]
    assert r.headers["x-request-id"] == "req-77"
    logged = [rec for rec in caplog.records if getattr(rec, "request_id", None) == "req-77"]
    assert logged, "the failure must be logged with its request id"


async def test_a_request_without_an_id_gets_a_fresh_one(
    http: httpx.AsyncClient, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    refuse_inserts(db_url)
    with caplog.at_level(logging.ERROR):
        ids = [
            (await http.post("/v1/events", json={"eventName": "x"})).headers["x-request-id"]
            for _ in range(2)
        ]
    assert all(re.fullmatch(r"[0-9a-f]{16}", request_id) for request_id in ids), ids
    assert ids[0] != ids[1]
    logged = {getattr(rec, "request_id", None) for rec in caplog.records}
    assert set(ids) <= logged


async def test_full_queue_is_429_with_retry_after(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'e.db'}"
    async with (
        running_server(store=db_url, max_batch_events=1, max_pending_events=1) as srv,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{srv.http_port}", timeout=30) as http,
    ):
        blocker = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
        try:
            # Hold SQLite's write lock, so the first event stays pending (well
            # within the store's 5 s busy timeout) and the queue stays full.
            blocker.execute("BEGIN IMMEDIATE")
            first = asyncio.ensure_future(http.post("/v1/events", json={"eventName": "a"}))
            second = asyncio.ensure_future(http.post("/v1/events", json={"eventName": "b"}))
            done, _ = await asyncio.wait({first, second}, return_when=asyncio.FIRST_COMPLETED)
            refused = done.pop().result()
            body = status_of(refused, 429, 8)
            assert int(refused.headers["retry-after"]) >= 1
            retry = [d for d in body["details"] if d["@type"].endswith("google.rpc.RetryInfo")]
            assert retry
            assert retry[0]["retryDelay"].endswith("s")
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        results = [await first, await second]
        assert sorted(r.status_code for r in results) == [200, 429]
    assert rows(db_url, "SELECT count(*) FROM events") == [(1,)]


async def test_batch_reply_is_the_grpc_ingest_ack(http: httpx.AsyncClient) -> None:
    from google.protobuf import json_format

    from eventwire.api import analytics_pb2

    r = await http.post(
        "/v1/events:batch",
        json={"sequence": 42, "events": [{"eventName": "a", "eventId": "s1"}, {"eventName": ""}]},
    )
    assert r.status_code == 200, r.text
    ack = json_format.ParseDict(r.json(), analytics_pb2.IngestAck())
    assert (ack.sequence, ack.accepted, ack.rejected) == (42, 1, 1)
    assert ack.rejections[0].violations[0].field == "events[1].event_name"
