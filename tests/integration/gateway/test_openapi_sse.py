"""The watch's Server-Sent Events match the API document, as schemathesis checks them.

The fuzz run leaves the endless GET of the watch out (it would only time out),
so here events read from a real watch are handed to schemathesis' own
response validation (``APIOperation.validate_response``, the
``response_schema_conformance`` check): each event against the documented
event schema, its ``data`` parsed as JSON and checked against the
``contentSchema`` (an Alert, or a google.rpc.Status for the closing event).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
import schemathesis

SSE = {"content-type": "text/event-stream"}


def _watch(document: dict[str, Any]) -> Any:
    return schemathesis.openapi.from_dict(document)["/v1/alerts:watch"]["GET"]


def _response(url: str, body: bytes) -> httpx.Response:
    response = httpx.Response(200, headers=SSE, content=body, request=httpx.Request("GET", url))
    response.elapsed = timedelta(0)  # a client's transport sets it once the body is read
    return response


async def test_watch_events_match_the_documented_json(http: httpx.AsyncClient) -> None:
    watch = _watch((await http.get("/openapi.json")).json())
    for device in ("boiler", "pump"):
        reply = await http.post(
            "/v1/alerts",
            json={"deviceId": device, "alertType": "heat", "severity": "SEVERITY_WARNING"},
        )
        assert reply.status_code == 200, reply.text
    body = b""
    async with http.stream("GET", "/v1/alerts:watch", params={"from_start": "true"}) as live:
        url = str(live.request.url)
        async for chunk in live.aiter_raw():
            body += chunk
            if body.count(b"event: alert") == 2 and body.endswith(b"\n\n"):
                break
    # The stream as a client that stopped here read it, then the closing error event.
    closing = b'event: error\ndata: {"code":14,"message":"draining","details":[]}\n\n'
    assert watch.validate_response(_response(url, body + closing)) is None


@pytest.mark.parametrize(
    "event",
    [
        b'id: c1\nevent: alert\ndata: {"deviceId": 5}\n\n',  # not an Alert
        b"id: c1\nevent: alert\ndata: plain text\n\n",  # not JSON at all
        b'event: error\ndata: {"message": "no code"}\n\n',  # not a Status
        b'event: alert\ndata: {"deviceId": "d"}\n\n',  # no cursor
    ],
    ids=["wrong-json", "not-json", "bad-status", "no-id"],
)
async def test_events_unlike_the_document_fail_the_check(
    http: httpx.AsyncClient, event: bytes
) -> None:
    watch = _watch((await http.get("/openapi.json")).json())
    url = str(http.base_url.join("/v1/alerts:watch"))
    with pytest.raises(Exception, match=r"(?i)schema|json|content"):
        watch.validate_response(_response(url, event))
