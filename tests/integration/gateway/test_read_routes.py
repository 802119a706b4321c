"""Gateway reads: JSON pages and queries, SSE watch resumed by Last-Event-ID, NDJSON export."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx

from tests.support.gateway import status_of, violations_of
from tests.support.reads import BY_PLAN, HOURLY_BY_NAME, dataset


async def _alert(http: httpx.AsyncClient, device: str) -> str:
    reply = await http.post(
        "/v1/alerts",
        json={"deviceId": device, "alertType": "heat", "severity": "SEVERITY_WARNING"},
    )
    assert reply.status_code == 200, reply.text
    tracking_id: str = reply.json()["trackingId"]
    return tracking_id


async def _sse_events(response: httpx.Response) -> AsyncIterator[dict[str, str]]:
    """Each SSE event's fields; comment lines (heartbeats) are skipped."""
    event: dict[str, str] = {}
    async for line in response.aiter_lines():
        if not line:
            if event:
                yield event
            event = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            event[name] = value


async def test_list_alerts_pages_and_filters(http: httpx.AsyncClient) -> None:
    ids = [await _alert(http, f"d{n % 2}") for n in range(5)]
    first = (await http.get("/v1/alerts", params={"page_size": 2})).json()
    assert [a["trackingId"] for a in first["alerts"]] == ids[:2]
    assert first["alerts"][0]["severity"] == "SEVERITY_WARNING"
    token = first["nextPageToken"]
    rest = (await http.get("/v1/alerts", params={"pageToken": token, "pageSize": 10})).json()
    assert [a["trackingId"] for a in rest["alerts"]] == ids[2:]
    assert rest["nextPageToken"] == ""
    d1 = (await http.get("/v1/alerts", params={"device_id": "d1", "min_severity": "2"})).json()
    assert [a["trackingId"] for a in d1["alerts"]] == [ids[1], ids[3]]
    none = (await http.get("/v1/alerts", params={"min_severity": "SEVERITY_CRITICAL"})).json()
    assert none["alerts"] == []


async def test_bad_query_parameters_are_named(http: httpx.AsyncClient) -> None:
    for path, params, field in [
        ("/v1/alerts", {"page_size": "2000"}, "page_size"),
        ("/v1/alerts", {"page_size": "ten"}, "page_size"),
        ("/v1/alerts", {"min_severity": "LOUD"}, "min_severity"),
        ("/v1/alerts", {"colour": "red"}, "colour"),
        ("/v1/alerts", {"page_token": "nope"}, "page_token"),
        ("/v1/events:query", {"group_by": "country"}, "group_by"),
        ("/v1/events:query", {"start": "10", "end": "10"}, "end"),
        ("/v1/events:query", {"bucket": "BUCKET_WEEK"}, "bucket"),
        ("/v1/events:export", {"follow": "maybe"}, "follow"),
        ("/v1/alerts:watch", {"after": "xyz"}, "after"),
    ]:
        body = status_of(await http.get(path, params=params), 400, 3)
        assert field in [f for f, _ in violations_of(body)], (path, params, body)


async def test_watch_as_server_sent_events_resumes_by_last_event_id(
    http: httpx.AsyncClient,
) -> None:
    first = [await _alert(http, "boiler") for _ in range(3)]
    async with http.stream("GET", "/v1/alerts:watch", params={"from_start": "true"}) as live:
        assert live.status_code == 200
        assert live.headers["content-type"] == "text/event-stream"
        got: list[dict[str, str]] = []
        async for event in _sse_events(live):
            got.append(event)
            if len(got) == 3:
                break
    assert [e["event"] for e in got] == ["alert"] * 3
    alerts = [json.loads(e["data"]) for e in got]
    assert [a["trackingId"] for a in alerts] == first
    assert [e["id"] for e in got] == [a["cursor"] for a in alerts]
    later = [await _alert(http, "boiler") for _ in range(2)]
    # What an EventSource does on reconnect: the same URL, plus the last id it saw.
    headers = {"last-event-id": got[-1]["id"]}
    async with http.stream(
        "GET", "/v1/alerts:watch", params={"from_start": "true"}, headers=headers
    ) as resumed:
        again: list[str] = []
        async for event in _sse_events(resumed):
            again.append(json.loads(event["data"])["trackingId"])
            if len(again) == 2:
                break
    assert again == later


async def test_query_and_export(http: httpx.AsyncClient) -> None:
    events = [
        json.loads(
            json.dumps(
                {
                    "eventName": e.event_name,
                    "userId": e.user_id,
                    "timestamp": e.timestamp,
                    "properties": dict(e.properties),
                    "eventId": e.event_id,
                }
            )
        )
        for e in dataset()
    ]
    reply = await http.post("/v1/events:batch", json={"events": events})
    assert reply.json()["accepted"] == len(events)
    hourly = (
        await http.get(
            "/v1/events:query", params={"bucket": "BUCKET_HOUR", "groupBy": "event_name"}
        )
    ).json()
    assert [
        (int(r["bucketStart"]), r["group"], int(r["count"]), int(r["distinctUsers"]))
        for r in hourly["rows"]
    ] == HOURLY_BY_NAME
    plans = (await http.get("/v1/events:query", params={"group_by": "properties.plan"})).json()
    assert [
        (int(r["bucketStart"]), r["group"], int(r["count"]), int(r["distinctUsers"]))
        for r in plans["rows"]
    ] == BY_PLAN
    async with http.stream("GET", "/v1/events:export") as export:
        assert export.headers["content-type"] == "application/x-ndjson"
        lines = [json.loads(line) async for line in export.aiter_lines() if line]
    assert [line["event"]["eventId"] for line in lines] == [e["eventId"] for e in events]
    async with http.stream(
        "GET", "/v1/events:export", params={"after": lines[6]["cursor"]}
    ) as rest:
        tail = [json.loads(line) async for line in rest.aiter_lines() if line]
    assert [line["event"]["eventId"] for line in tail] == [e["eventId"] for e in events[7:]]


async def test_the_openapi_document_lists_the_read_routes(http: httpx.AsyncClient) -> None:
    doc = (await http.get("/openapi.json")).json()
    operations = {
        op["operationId"]: (path, method)
        for path, item in doc["paths"].items()
        for method, op in item.items()
    }
    assert operations["listAlerts"] == ("/v1/alerts", "get")
    assert operations["reportAlert"] == ("/v1/alerts", "post")
    assert operations["watchAlerts"] == ("/v1/alerts:watch", "get")
    assert operations["queryEvents"] == ("/v1/events:query", "get")
    assert operations["exportEvents"] == ("/v1/events:export", "get")
    watch = doc["paths"]["/v1/alerts:watch"]["get"]
    assert "text/event-stream" in watch["responses"]["200"]["content"]
    assert {p["name"] for p in watch["parameters"]} >= {"after", "from_start", "Last-Event-ID"}
