"""The gateway's rules at their edges, each against the served API document.

Where a schema can state a rule (lengths, patterns, enums), each value here is
checked twice: the server accepts it exactly when the served /openapi.json says
it is valid. Where no schema can (``end`` after ``start``, ``after`` without
``from_start``, cursors and page tokens bound to their tenant and filter),
schemathesis is told so per operation (``schemathesis.toml``), and these tests
prove that the valid combinations pass and the others are refused with 400
naming the field. HEAD answers every GET route without running its stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest

from eventwire.ingest.alerts import (
    MAX_ATTRIBUTE_KEY_CHARS,
    MAX_ATTRIBUTE_VALUE_CHARS,
    MAX_ATTRIBUTES,
    MAX_MESSAGE_CHARS,
)
from eventwire.ingest.validation import DEFAULT_LIMITS
from eventwire.reads.checks import MAX_PROPERTY_KEY_CHARS
from eventwire.testing import running_server
from tests.support.gateway import status_of, violations_of
from tests.support.security import token, token_file_text

NAME = DEFAULT_LIMITS.max_name_chars
ALERT_TYPE = DEFAULT_LIMITS.max_alert_type_chars
STREAMS = {"/v1/alerts:watch": "text/event-stream", "/v1/events:export": "application/x-ndjson"}


async def _get(
    http: httpx.AsyncClient,
    path: str,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """Status and JSON body of a GET; a stream that started is left unread (None)."""
    async with http.stream("GET", path, params=params, headers=headers) as reply:
        if reply.status_code == 200 and path in STREAMS:
            assert reply.headers["content-type"] == STREAMS[path]
            return 200, None
        await reply.aread()
        return reply.status_code, reply.json()


def _refused(status: int, body: Any, field: str) -> None:
    assert status == 400, body
    assert body["code"] == 3, body
    assert field in [f for f, _ in violations_of(body)], body


@pytest.fixture
async def doc(http: httpx.AsyncClient) -> dict[str, Any]:
    document: dict[str, Any] = (await http.get("/openapi.json")).json()
    return document


def _param_schema(doc: dict[str, Any], path: str, name: str) -> Any:
    (schema,) = [p["schema"] for p in doc["paths"][path]["get"]["parameters"] if p["name"] == name]
    return schema


def _documented(schema: Any, value: object) -> bool:
    return bool(jsonschema_rs.validator_for(schema).is_valid(value))


# -- HEAD ------------------------------------------------------------------------------


async def test_head_answers_every_get_route_with_its_headers_and_no_body(
    http: httpx.AsyncClient, doc: dict[str, Any]
) -> None:
    reply = await http.post("/v1/alerts", json={"deviceId": "d", "alertType": "t"})
    tracking_id = reply.json()["trackingId"]
    paths = [
        p.replace("{tracking_id}", tracking_id) for p, ops in doc["paths"].items() if "get" in ops
    ]
    assert set(STREAMS) <= set(paths)
    # A watch never ends and neither does a followed export: HEAD must not run them.
    cases: list[tuple[str, dict[str, str]]] = [(path, {}) for path in paths]
    cases += [
        ("/v1/alerts:watch", {"from_start": "true"}),
        ("/v1/events:export", {"follow": "true"}),
    ]
    for path, params in cases:
        head = await http.head(path, params=params)
        assert head.content == b""
        if path in STREAMS:
            assert head.status_code == 200, (path, params)
            assert head.headers["content-type"] == STREAMS[path]
        else:
            # Some reads need a parameter (a destination's name) and refuse without it:
            # HEAD must refuse alike, headers and all.
            get = await http.get(path)
            assert head.status_code == get.status_code, (path, params)
            assert head.headers["content-type"] == get.headers["content-type"]
            assert head.headers["content-length"] == get.headers["content-length"]
    statuses = {path: (await http.head(path)).status_code for path, _ in cases}
    assert sum(status == 200 for status in statuses.values()) >= len(statuses) - 1, statuses


async def test_head_checks_the_request_as_get_does(http: httpx.AsyncClient) -> None:
    for path, params in [
        ("/v1/alerts:watch", {"min_severity": "LOUD"}),
        ("/v1/alerts:watch", {"after": "not-a-cursor"}),
        ("/v1/events:export", {"start": "20", "end": "10"}),
        ("/v1/events:query", {"group_by": "country"}),
        ("/v1/alerts", {"page_size": "1001"}),
    ]:
        head = await http.head(path, params=params)
        assert head.status_code == 400, (path, params)
        assert head.content == b""
        status, _ = await _get(http, path, params)
        assert status == 400


# -- rules no schema states ------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/alerts", "/v1/events:query", "/v1/events:export"])
async def test_end_must_be_after_start_when_both_are_set(
    http: httpx.AsyncClient, path: str
) -> None:
    for start, end in [(10, 20), (10, 0), (0, 10), (0, 0), (10, 11)]:
        status, body = await _get(http, path, {"start": start, "end": end})
        assert status == 200, (start, end, body)
    for start, end in [(20, 10), (10, 10)]:
        status, body = await _get(http, path, {"start": start, "end": end})
        _refused(status, body, "end")


async def test_count_events_counts_an_empty_range_as_zero(http: httpx.AsyncClient) -> None:
    reply = await http.post("/v1/events", json={"eventName": "e", "timestamp": 1_700_000_000_000})
    assert reply.status_code == 200
    for start, end, count in [(1, 0, "1"), (1_700_000_000_000, 1_700_000_000_001, "1")]:
        got = await http.get("/v1/events:count", params={"start": start, "end": end})
        assert got.json() == {"count": count}
    for start, end in [(1_700_000_000_001, 1_700_000_000_000), (5, 5)]:
        got = await http.get("/v1/events:count", params={"start": start, "end": end})
        assert got.status_code == 200
        assert got.json() == {"count": "0"}


async def _alert_cursor(http: httpx.AsyncClient, device: str) -> str:
    reply = await http.post("/v1/alerts", json={"deviceId": device, "alertType": "t"})
    assert reply.status_code == 200
    listed = (await http.get("/v1/alerts", params={"device_id": device})).json()
    cursor: str = listed["alerts"][-1]["cursor"]
    return cursor


def _forged(cursor: str) -> str:
    return cursor[:-1] + ("A" if cursor[-1] != "A" else "B")


async def test_after_and_from_start_exclude_each_other(http: httpx.AsyncClient) -> None:
    cursor = await _alert_cursor(http, "d")
    for params in ({"after": cursor}, {"from_start": "true"}, {"after": cursor, "from_start": "0"}):
        status, _ = await _get(http, "/v1/alerts:watch", {"device_id": "d", **params})
        assert status == 200, params
    params = {"device_id": "d", "after": cursor, "from_start": "true"}
    status, body = await _get(http, "/v1/alerts:watch", params)
    _refused(status, body, "from_start")
    # Last-Event-ID is a newer position than the URL's: it replaces both.
    status, _ = await _get(http, "/v1/alerts:watch", params, headers={"last-event-id": cursor})
    assert status == 200


async def test_watch_cursors_are_bound_to_their_filter(http: httpx.AsyncClient) -> None:
    cursor = await _alert_cursor(http, "d0")
    status, _ = await _get(http, "/v1/alerts:watch", {"device_id": "d0", "after": cursor})
    assert status == 200
    for params, headers, field in [
        ({"device_id": "d1", "after": cursor}, {}, "after"),
        ({"after": cursor}, {}, "after"),
        ({"device_id": "d0", "min_severity": "1", "after": cursor}, {}, "after"),
        ({"device_id": "d0", "after": _forged(cursor)}, {}, "after"),
        ({"device_id": "d0", "after": "x"}, {}, "after"),
        ({"device_id": "d1"}, {"last-event-id": cursor}, "Last-Event-ID"),
        ({"device_id": "d0"}, {"last-event-id": _forged(cursor)}, "Last-Event-ID"),
    ]:
        status, body = await _get(http, "/v1/alerts:watch", params, headers)
        _refused(status, body, field)
    status, _ = await _get(http, "/v1/alerts:watch", {"device_id": "d0"}, {"last-event-id": cursor})
    assert status == 200


async def test_page_tokens_are_bound_to_their_filter(http: httpx.AsyncClient) -> None:
    for _ in range(3):
        await _alert_cursor(http, "d0")
    first = (await http.get("/v1/alerts", params={"device_id": "d0", "page_size": 1})).json()
    token = first["nextPageToken"]
    assert token
    same = {"device_id": "d0", "page_size": 5, "page_token": token}
    status, body = await _get(http, "/v1/alerts", same)
    assert status == 200
    assert len(body["alerts"]) == 2
    for params in [
        {**same, "device_id": "d1"},
        {**same, "start": 1},
        {**same, "alert_type": "t"},
        {**same, "page_token": _forged(token)},
        {**same, "page_token": "nope"},
    ]:
        status, body = await _get(http, "/v1/alerts", params)
        _refused(status, body, "page_token")


async def test_export_cursors_are_bound_to_their_filter(http: httpx.AsyncClient) -> None:
    reply = await http.post("/v1/events:batch", json={"events": [{"eventName": "a"}] * 2})
    assert reply.json()["accepted"] == 2
    async with http.stream("GET", "/v1/events:export", params={"event_name": "a"}) as export:
        lines = [line async for line in export.aiter_lines() if line]
    cursor = httpx.Response(200, content=lines[0]).json()["cursor"]
    status, _ = await _get(http, "/v1/events:export", {"event_name": "a", "after": cursor})
    assert status == 200
    for params in [
        {"event_name": "b", "after": cursor},
        {"after": cursor},
        {"event_name": "a", "start": 1, "after": cursor},
        {"event_name": "a", "after": _forged(cursor)},
    ]:
        status, body = await _get(http, "/v1/events:export", params)
        _refused(status, body, "after")


@pytest.fixture
async def two_tenants(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, str, str]]:
    acme, globex = token("acme"), token("globex")
    tokens = tmp_path / "tokens"
    tokens.write_text(token_file_text({acme: ("acme", "read,write"), globex: ("globex", "read")}))
    async with (
        running_server(auth_tokens=str(tokens)) as srv,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{srv.http_port}", timeout=30) as http,
    ):
        yield http, acme, globex


async def test_tokens_and_cursors_are_bound_to_their_tenant(
    two_tenants: tuple[httpx.AsyncClient, str, str],
) -> None:
    http, acme, globex = two_tenants
    mine, theirs = {"authorization": f"Bearer {acme}"}, {"authorization": f"Bearer {globex}"}
    for _ in range(2):
        reply = await http.post(
            "/v1/alerts", json={"deviceId": "d", "alertType": "t"}, headers=mine
        )
        assert reply.status_code == 200
    reply = await http.post("/v1/events", json={"eventName": "e"}, headers=mine)
    assert reply.status_code == 200
    page = (await http.get("/v1/alerts", params={"page_size": 1}, headers=mine)).json()
    cursor = page["alerts"][0]["cursor"]
    async with http.stream("GET", "/v1/events:export", headers=mine) as export:
        (line,) = [line async for line in export.aiter_lines() if line]
    event_cursor = httpx.Response(200, content=line).json()["cursor"]
    for path, params, headers, field in [
        ("/v1/alerts", {"page_size": 1, "page_token": page["nextPageToken"]}, {}, "page_token"),
        ("/v1/alerts:watch", {"after": cursor}, {}, "after"),
        ("/v1/alerts:watch", {}, {"last-event-id": cursor}, "Last-Event-ID"),
        ("/v1/events:export", {"after": event_cursor}, {}, "after"),
    ]:
        status, _ = await _get(http, path, params, {**mine, **headers})
        assert status == 200, path
        status, body = await _get(http, path, params, {**theirs, **headers})
        _refused(status, body, field)


# -- rules the document states -----------------------------------------------------------

_FILTER_VALUES: list[tuple[str, bool]] = [
    ("", True),
    ("plain", True),
    ("with inner spaces", True),
    ("   ", True),  # blank matches nothing, and is no mistake
    ("k\u200d\U0001f3f4\U000e0071\U000e007f", True),  # ZWJ before a tag sequence
    ("a\x00b", False),
    ("a\nb", False),
    ("a\u200bb", False),  # zero-width space
    ("a\u2028b", False),
    ("\u0085", False),
]


@pytest.mark.parametrize(
    ("path", "field", "max_chars"),
    [
        ("/v1/alerts", "device_id", NAME),
        ("/v1/alerts", "alert_type", ALERT_TYPE),
        ("/v1/alerts:watch", "device_id", NAME),
        ("/v1/alerts:watch", "alert_type", ALERT_TYPE),
        ("/v1/events:query", "event_name", NAME),
        ("/v1/events:export", "event_name", NAME),
        ("/v1/events:count", "event_name", NAME),
        ("/v1/events:count", "user_id", NAME),
    ],
)
async def test_read_filters_are_what_a_stored_name_can_be(
    http: httpx.AsyncClient, doc: dict[str, Any], path: str, field: str, max_chars: int
) -> None:
    schema = _param_schema(doc, path, field)
    values = [*_FILTER_VALUES, ("é" * max_chars, True), ("é" * (max_chars + 1), False)]
    for value, valid in values:
        assert _documented(schema, value) == valid, (field, value)
        status, body = await _get(http, path, {field: value})
        if valid:
            assert status == 200, (field, value, body)
        else:
            _refused(status, body, field)


async def test_group_by_takes_a_column_or_a_property_key(
    http: httpx.AsyncClient, doc: dict[str, Any]
) -> None:
    schema = _param_schema(doc, "/v1/events:query", "group_by")
    key = MAX_PROPERTY_KEY_CHARS
    for value, valid in [
        ("", True),
        ("event_name", True),
        ("user_id", True),
        ("properties.plan", True),
        ("properties." + "k" * key, True),
        ("properties.a b\u0085\u200b", True),  # a key matching nothing, but no control byte
        ("properties.", False),
        ("properties." + "k" * (key + 1), False),
        ("properties.a\x1fb", False),
        ("properties.a\x7f", False),
        ("properties.a\x00", False),
        ("country", False),
        ("Event_name", False),
        ("event_name ", False),
        ("event_name\n", False),
        ("properties", False),
    ]:
        assert _documented(schema, value) == valid, value
        status, body = await _get(http, "/v1/events:query", {"group_by": value})
        if valid:
            assert status == 200, (value, body)
        else:
            _refused(status, body, "group_by")


@pytest.mark.parametrize(
    ("path", "field", "bounds"),
    [("/v1/alerts", "page_size", (0, 1000)), ("/v1/events:query", "limit", (0, 10_000))],
)
async def test_sizes_are_bounded_as_documented(
    http: httpx.AsyncClient, doc: dict[str, Any], path: str, field: str, bounds: tuple[int, int]
) -> None:
    schema = _param_schema(doc, path, field)
    low, high = bounds
    for value, valid in [(low, True), (high, True), (low - 1, False), (high + 1, False)]:
        assert _documented(schema, value) == valid, value
        status, body = await _get(http, path, {field: value})
        if valid:
            assert status == 200, body
        else:
            _refused(status, body, field)


def _alert(**fields: object) -> dict[str, object]:
    return {"deviceId": "d", "alertType": "t", **fields}


async def test_severity_is_an_exact_name_or_a_defined_number(
    http: httpx.AsyncClient, doc: dict[str, Any]
) -> None:
    schema = doc["components"]["schemas"]["AlertRequest"]
    for severity, valid in [
        ("SEVERITY_INFO", True),
        ("SEVERITY_CRITICAL", True),
        (0, True),
        (3, True),
        (2.0, True),
        (None, True),
        (-182, False),
        (4, False),
        (2**40, False),
        (2.5, False),
        (True, False),
        ("1", False),
        (" SEVERITY_INFO", False),
        ("severity_info", False),
        ("LOUD", False),
        ([1], False),
    ]:
        body = _alert(severity=severity)
        assert _documented(schema, body) == valid, severity
        reply = await http.post("/v1/alerts", json=body)
        if valid:
            assert reply.status_code == 200, (severity, reply.text)
        else:
            assert "severity" in [f for f, _ in violations_of(status_of(reply, 400, 3))]


async def test_alert_message_and_attributes_are_bounded_as_documented(
    http: httpx.AsyncClient, doc: dict[str, Any]
) -> None:
    schema = doc["components"]["schemas"]["AlertRequest"]
    many = {f"k{n}": "v" for n in range(MAX_ATTRIBUTES)}
    cases: list[tuple[dict[str, Any], bool]] = [
        ({"message": "line one\nline two\t\u200b"}, True),
        ({"message": "m" * MAX_MESSAGE_CHARS}, True),
        ({"message": "m" * (MAX_MESSAGE_CHARS + 1)}, False),
        ({"message": "a\x00b"}, False),
        ({"attributes": many}, True),
        ({"attributes": {**many, "one-more": "v"}}, False),
        ({"attributes": {"k" * MAX_ATTRIBUTE_KEY_CHARS: "v"}}, True),
        ({"attributes": {"k" * (MAX_ATTRIBUTE_KEY_CHARS + 1): "v"}}, False),
        ({"attributes": {"": "v"}}, False),
        ({"attributes": {"a\x1fb": "v"}}, False),
        ({"attributes": {"a\x7f": "v"}}, False),
        ({"attributes": {"k \u200b\u0085": "v"}}, True),
        ({"attributes": {"k": "v" * MAX_ATTRIBUTE_VALUE_CHARS}}, True),
        ({"attributes": {"k": "v" * (MAX_ATTRIBUTE_VALUE_CHARS + 1)}}, False),
        ({"attributes": {"k": "new\nline"}}, True),
        ({"attributes": {"k": "a\x00"}}, False),
        ({"attributes": None, "message": None}, True),
    ]
    for fields, valid in cases:
        body = _alert(**fields)
        assert _documented(schema, body) == valid, fields
        reply = await http.post("/v1/alerts", json=body)
        if valid:
            assert reply.status_code == 200, (fields, reply.text)
        else:
            (field,) = fields
            assert any(f.startswith(field) for f, _ in violations_of(status_of(reply, 400, 3)))


async def test_a_filter_postgresql_cannot_compare_is_refused_before_the_store(pg_url: str) -> None:
    # PostgreSQL refuses NUL in text: before filters were checked, these were 500s
    # (and an export's last line an internal error).
    async with (
        running_server(store=pg_url) as srv,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{srv.http_port}", timeout=30) as http,
    ):
        for path, field in [
            ("/v1/alerts", "device_id"),
            ("/v1/alerts", "alert_type"),
            ("/v1/alerts:watch", "device_id"),
            ("/v1/events:query", "event_name"),
            ("/v1/events:export", "event_name"),
            ("/v1/events:count", "user_id"),
        ]:
            status, body = await _get(http, path, {field: "a\x00b"})
            _refused(status, body, field)
            status, _ = await _get(http, path, {field: "a b"})
            assert status == 200, path
