"""Connect, gRPC-Web and gRPC on the HTTP port: buf curl with no flags, connectrpc's
client in both protocols, hand-framed gRPC-Web, HTTP/2 prior knowledge, metrics."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.protocol import ProtocolType
from google.rpc import error_details_pb2, status_pb2

from eventwire._rpc import SERVICE_NAMES
from eventwire.api import analytics_connect, analytics_pb2, telemetry_connect, telemetry_pb2
from eventwire.runtime.server import Server
from tests.support.doors import DOORS, call

TRACK = "/analytics.AnalyticsService/TrackEvent"


@pytest.fixture
def base(server: Server) -> str:
    return f"http://127.0.0.1:{server.http_port}"


async def buf_curl(buf: Path, *args: str) -> tuple[int, str]:
    """``buf curl ARGS``: nothing added but a timeout, so buf picks its defaults."""
    proc = await asyncio.create_subprocess_exec(
        str(buf),
        "curl",
        "--timeout",
        "10s",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_buf_curl_with_its_defaults_tracks_an_event(
    buf: Path, base: str, server: Server
) -> None:
    # Connect protocol, schema by reflection over HTTP/2 on the gateway's port.
    body = '{"event_name": "signup", "user_id": "u-42", "event_id": "evt-buf-1"}'
    code, out = await buf_curl(buf, "-d", body, base + TRACK)
    assert code == 0, out
    assert json.loads(out) == {"success": True, "eventId": "evt-buf-1"}
    code, out = await buf_curl(buf, "-d", body, base + TRACK)
    assert json.loads(out) == {"success": True, "eventId": "evt-buf-1", "duplicate": True}

    # Stored, and visible to the other doors.
    async with httpx.AsyncClient(base_url=base) as http:
        counted = await http.get("/v1/events:count", params={"event_name": "signup"})
    assert counted.json() == {"count": "1"}


async def test_buf_curl_reports_a_bad_request_with_its_details(buf: Path, base: str) -> None:
    code, out = await buf_curl(buf, "-d", '{"event_name": ""}', base + TRACK)
    assert code == 3 << 3  # buf's exit code: the gRPC code shifted left by three
    error = json.loads(out)
    assert error["code"] == "invalid_argument"
    (detail,) = error["details"]
    assert detail["type"] == "google.rpc.BadRequest"
    bad = error_details_pb2.BadRequest.FromString(base64.b64decode(detail["value"] + "=="))
    assert [v.field for v in bad.field_violations] == ["event_name"]


@pytest.mark.parametrize("protocol", ["grpcweb", "grpc"])
async def test_buf_curl_in_the_other_protocols(buf: Path, base: str, protocol: str) -> None:
    code, out = await buf_curl(
        buf,
        "--protocol",
        protocol,
        "-d",
        '{"device_id": "d-1", "alert_type": "heat"}',
        base + "/telemetry.TelemetryService/ReportAlert",
    )
    assert code == 0, out
    assert json.loads(out)["acknowledged"] is True


async def test_buf_curl_lists_the_services_by_reflection(buf: Path, base: str) -> None:
    code, out = await buf_curl(buf, "--list-services", base)
    assert code == 0, out
    # Every service of the operations table, whoever added it, and reflection itself.
    assert set(out.split()) == {
        *SERVICE_NAMES,
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    }
    assert {"analytics.AnalyticsService", "telemetry.TelemetryService"} <= set(SERVICE_NAMES)


@pytest.fixture(params=[ProtocolType.CONNECT, ProtocolType.GRPC_WEB], ids=["connect", "grpc-web"])
async def analytics(
    request: pytest.FixtureRequest, base: str
) -> AsyncIterator[analytics_connect.AnalyticsServiceClient]:
    async with analytics_connect.AnalyticsServiceClient(base, protocol=request.param) as client:
        yield client


async def test_connectrpc_client_calls_unary_rpcs(
    analytics: analytics_connect.AnalyticsServiceClient,
) -> None:
    reply = await analytics.track_event(
        analytics_pb2.TrackEventRequest(event_name="view", event_id="e-1")
    )
    assert reply.success
    assert reply.event_id == "e-1"
    batch = analytics_pb2.EventBatch(
        events=[
            analytics_pb2.TrackEventRequest(event_name="view"),
            analytics_pb2.TrackEventRequest(),
        ],
        sequence=7,
    )
    ack = await analytics.track_events(batch)
    assert (ack.accepted, ack.rejected, ack.sequence) == (1, 1, 7)
    assert ack.rejections[0].violations[0].field == "events[1].event_name"
    count = await analytics.count_events(analytics_pb2.CountEventsRequest(event_name="view"))
    assert count.count == 2


async def test_connectrpc_client_gets_the_grpc_doors_error_details(
    analytics: analytics_connect.AnalyticsServiceClient,
) -> None:
    with pytest.raises(ConnectError) as caught:
        await analytics.track_event(analytics_pb2.TrackEventRequest(event_name=" ", timestamp=-5))
    assert caught.value.code == Code.INVALID_ARGUMENT
    (detail,) = caught.value.details
    assert detail.type_name == "google.rpc.BadRequest"
    bad = error_details_pb2.BadRequest.FromString(detail.message_bytes)
    assert {v.field for v in bad.field_violations} == {"event_name", "timestamp"}


async def test_server_streams_over_connect_and_grpc_web(base: str) -> None:
    async with telemetry_connect.TelemetryServiceClient(
        base, protocol=ProtocolType.GRPC_WEB
    ) as telemetry:
        reply = await telemetry.report_alert(
            telemetry_pb2.AlertRequest(device_id="d-9", alert_type="smoke")
        )
        alert = await telemetry.get_alert(
            telemetry_pb2.GetAlertRequest(tracking_id=reply.tracking_id)
        )
        assert alert.device_id == "d-9"
        with pytest.raises(ConnectError) as caught:
            await telemetry.get_alert(telemetry_pb2.GetAlertRequest(tracking_id="nope"))
        assert caught.value.code == Code.NOT_FOUND
    async with analytics_connect.AnalyticsServiceClient(base) as analytics:
        await analytics.track_event(analytics_pb2.TrackEventRequest(event_name="a", event_id="x1"))
        exported = [e async for e in analytics.export_events(analytics_pb2.ExportEventsRequest())]
    assert [e.event.event_id for e in exported] == ["x1"]


def grpc_web_frame(message: bytes, *, trailer: bool = False) -> bytes:
    return struct.pack(">BI", 0x80 if trailer else 0, len(message)) + message


def grpc_web_frames(body: bytes) -> list[tuple[int, bytes]]:
    frames, at = [], 0
    while at < len(body):
        flags, size = struct.unpack(">BI", body[at : at + 5])
        frames.append((flags, body[at + 5 : at + 5 + size]))
        at += 5 + size
    assert at == len(body), "a frame runs past the body"
    return frames


async def test_a_hand_framed_grpc_web_call_gets_its_trailers_in_the_body(base: str) -> None:
    request = analytics_pb2.TrackEventRequest(event_name="raw", event_id="raw-1")
    headers = {"content-type": "application/grpc-web+proto", "x-grpc-web": "1"}
    async with httpx.AsyncClient(base_url=base) as http:
        ok = await http.post(
            TRACK, content=grpc_web_frame(request.SerializeToString()), headers=headers
        )
        bad = await http.post(
            TRACK,
            content=grpc_web_frame(analytics_pb2.TrackEventRequest().SerializeToString()),
            headers=headers,
        )
    assert ok.status_code == 200
    assert ok.headers["content-type"] == "application/grpc-web+proto"
    (data_flags, data), (trailer_flags, trailer) = grpc_web_frames(ok.content)
    assert (data_flags, trailer_flags) == (0, 0x80)
    assert analytics_pb2.TrackEventResponse.FromString(data).event_id == "raw-1"
    trailers = dict(line.split(":", 1) for line in trailer.decode().strip().split("\r\n"))
    assert trailers["grpc-status"].strip() == "0"

    # An error: no message, the status in trailers (in the body, or trailers-only
    # in the headers, both allowed by the gRPC-Web protocol).
    assert bad.status_code == 200
    fields = {k: v for k, v in bad.headers.items() if k.startswith("grpc-")}
    for flags, payload in grpc_web_frames(bad.content):
        assert flags == 0x80
        fields |= {
            k.strip().lower(): v.strip()
            for k, v in (line.split(":", 1) for line in payload.decode().strip().split("\r\n"))
        }
    assert fields["grpc-status"] == "3"
    details = status_pb2.Status.FromString(
        base64.b64decode(fields["grpc-status-details-bin"] + "==")
    )
    assert details.details[0].type_url.endswith("google.rpc.BadRequest")


async def test_http2_prior_knowledge_serves_the_json_routes_too(base: str) -> None:
    async with httpx.AsyncClient(base_url=base, http1=False, http2=True) as http:
        reply = await http.post("/v1/events", json={"eventName": "h2", "eventId": "h2-1"})
        connect = await http.post(TRACK, json={"eventName": "h2"})
    assert reply.http_version == "HTTP/2"
    assert reply.json()["eventId"] == "h2-1"
    assert connect.http_version == "HTTP/2"
    assert connect.json()["success"] is True


async def test_connect_calls_count_in_the_per_rpc_metrics(base: str, server: Server) -> None:
    async with httpx.AsyncClient(base_url=base) as http:
        await http.post(TRACK, json={"eventName": "m"})
        await http.post(TRACK, json={"eventName": ""})
    text = (await asyncio.to_thread(_scrape, server)).splitlines()
    handled = [line for line in text if line.startswith("grpc_server_handled_total{")]
    assert any('grpc_method="TrackEvent"' in line and 'grpc_code="OK"' in line for line in handled)
    assert any(
        'grpc_method="TrackEvent"' in line and 'grpc_code="INVALID_ARGUMENT"' in line
        for line in handled
    )
    routes = [line for line in text if line.startswith("eventwire_http_requests_total{")]
    assert any(f'route="{TRACK}"' in line and 'code="400"' in line for line in routes)


def _scrape(server: Server) -> str:
    from prometheus_client import generate_latest

    return generate_latest(server.metrics.registry).decode()


async def test_client_and_bidi_streams_over_http2(base: str) -> None:
    import pyqwest

    # HTTP/2 without TLS, as buf curl speaks it: a bidi stream needs both directions open.
    transport = pyqwest.HTTPTransport(http_version=pyqwest.HTTPVersion.HTTP2)
    http2 = pyqwest.Client(transport)
    async with analytics_connect.AnalyticsServiceClient(base, http_client=http2) as analytics:

        async def events() -> AsyncIterator[analytics_pb2.TrackEventRequest]:
            for i in range(3):
                yield analytics_pb2.TrackEventRequest(event_name="s", event_id=f"s-{i}")

        stored = await analytics.stream_events(events())
        assert (stored.accepted, stored.duplicates) == (3, 0)

        async def batches() -> AsyncIterator[analytics_pb2.EventBatch]:
            for sequence in (1, 2):
                event = analytics_pb2.TrackEventRequest(event_name="b", event_id=f"b-{sequence}")
                yield analytics_pb2.EventBatch(events=[event, event], sequence=sequence)

        acks = [ack async for ack in analytics.ingest_events(batches())]
        assert [(a.sequence, a.accepted, a.duplicates) for a in acks] == [(1, 1, 1), (2, 1, 1)]

        async def bad() -> AsyncIterator[analytics_pb2.TrackEventRequest]:
            yield analytics_pb2.TrackEventRequest(event_name="fine", event_id="never")
            yield analytics_pb2.TrackEventRequest(event_name="")

        # All or nothing, as over gRPC: the bad event fails the stream, nothing is stored.
        with pytest.raises(ConnectError) as caught:
            await analytics.stream_events(bad())
        assert caught.value.code == Code.INVALID_ARGUMENT
        count = await analytics.count_events(analytics_pb2.CountEventsRequest(event_name="fine"))
        assert count.count == 0
    await transport.aclose()


@pytest.mark.parametrize("door", DOORS)
async def test_a_service_added_to_the_table_is_served_on_every_door(base: str, door: str) -> None:
    # DestinationsService came after the Connect door: it is mounted from the table.
    async with httpx.AsyncClient(base_url=base) as http:
        listed = await call(http, door, "ListDestinations", {})
        unknown = await call(http, door, "PauseDestination", {"name": "nope"})
    assert listed.code == 0, listed
    assert listed.reply.get("destinations", []) == []
    assert unknown.code == 5, unknown  # NOT_FOUND, as over gRPC
