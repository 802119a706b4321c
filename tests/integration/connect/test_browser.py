"""A real browser (Debian's chromium, driven by playwright) calls the HTTP port in gRPC-Web
and in Connect JSON with fetch(), as a web page's generated client does."""

from __future__ import annotations

import base64
import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest

from eventwire.api import analytics_pb2
from eventwire.runtime.server import Server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

# Frames the request, posts it, and splits the reply into its frames: what a
# gRPC-Web client library does in a page.
GRPC_WEB = """
async ([url, b64]) => {
  const message = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
  const body = new Uint8Array(5 + message.length);
  new DataView(body.buffer).setUint32(1, message.length);
  body.set(message, 5);
  const reply = await fetch(url, {
    method: "POST",
    headers: {"content-type": "application/grpc-web+proto", "x-grpc-web": "1"},
    body,
  });
  const bytes = new Uint8Array(await reply.arrayBuffer());
  const frames = [];
  for (let at = 0; at < bytes.length;) {
    const size = new DataView(bytes.buffer, at + 1, 4).getUint32(0);
    const payload = bytes.slice(at + 5, at + 5 + size);
    frames.push([bytes[at], btoa(String.fromCharCode(...payload))]);
    at += 5 + size;
  }
  return {status: reply.status, frames};
}
"""

CONNECT_JSON = """
async ([url, request]) => {
  const reply = await fetch(url, {
    method: "POST",
    headers: {"content-type": "application/json", "connect-protocol-version": "1"},
    body: JSON.stringify(request),
  });
  return {status: reply.status, body: await reply.json()};
}
"""


@pytest.fixture
async def page(server: Server) -> AsyncIterator[Any]:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.skip("SKIPPED LOUDLY: playwright is not installed")
    if not shutil.which(CHROMIUM):
        pytest.skip("SKIPPED LOUDLY: no chromium to drive (apt-get install chromium)")
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            tab = await browser.new_page()
            # A page of the server's own origin: its fetch() calls need no CORS.
            await tab.goto(f"http://127.0.0.1:{server.http_port}/healthz")
            yield tab
        finally:
            await browser.close()


async def test_a_browser_calls_track_event_in_grpc_web(page: Any, server: Server) -> None:
    url = f"http://127.0.0.1:{server.http_port}/analytics.AnalyticsService/TrackEvent"
    request = analytics_pb2.TrackEventRequest(event_name="page_view", event_id="web-1")
    encoded = base64.b64encode(request.SerializeToString()).decode()
    ok = await page.evaluate(GRPC_WEB, [url, encoded])
    assert ok["status"] == 200
    (data_flags, data), (trailer_flags, trailer) = ok["frames"]
    assert (data_flags, trailer_flags) == (0, 0x80)
    assert analytics_pb2.TrackEventResponse.FromString(base64.b64decode(data)).event_id == "web-1"
    assert "grpc-status:0" in base64.b64decode(trailer).decode().replace(" ", "")

    empty = base64.b64encode(analytics_pb2.TrackEventRequest().SerializeToString()).decode()
    refused = await page.evaluate(GRPC_WEB, [url, empty])
    assert refused["status"] == 200
    ((flags, trailers),) = refused["frames"]  # no message, the status in the trailer frame
    assert flags == 0x80
    lines = base64.b64decode(trailers).decode().replace(" ", "")
    assert "grpc-status:3" in lines
    assert "grpc-status-details-bin:" in lines


async def test_a_browser_calls_count_events_in_connect_json(page: Any, server: Server) -> None:
    base = f"http://127.0.0.1:{server.http_port}/analytics.AnalyticsService"
    tracked = await page.evaluate(CONNECT_JSON, [f"{base}/TrackEvent", {"eventName": "click"}])
    assert tracked["status"] == 200
    assert tracked["body"]["success"] is True
    counted = await page.evaluate(CONNECT_JSON, [f"{base}/CountEvents", {"eventName": "click"}])
    assert counted == {"status": 200, "body": {"count": "1"}}
    bad = await page.evaluate(CONNECT_JSON, [f"{base}/TrackEvent", {"eventName": ""}])
    assert bad["status"] == 400
    assert bad["body"]["code"] == "invalid_argument"
    assert bad["body"]["details"][0]["type"] == "google.rpc.BadRequest"
