"""One API, every door: the same bad input gets the same violations over gRPC, the JSON
routes, Connect (JSON and binary) and gRPC-Web, and what one door stores the others see."""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc
import httpx
import pytest
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

from eventwire.api import analytics_pb2, analytics_pb2_grpc, telemetry_pb2, telemetry_pb2_grpc
from tests.support.bad_inputs import CASES, NOW_MS, BadInput
from tests.support.doors import DOORS, call
from tests.support.gateway import status_of

Analytics: TypeAlias = "analytics_pb2_grpc.AnalyticsServiceAsyncStub"
Telemetry: TypeAlias = "telemetry_pb2_grpc.TelemetryServiceAsyncStub"


async def _over_grpc(
    case: BadInput, analytics: Analytics, telemetry: Telemetry
) -> list[tuple[str, str]]:
    stubs: dict[str, tuple[Any, type[Message]]] = {
        "TrackEvent": (analytics.TrackEvent, analytics_pb2.TrackEventRequest),
        "CountEvents": (analytics.CountEvents, analytics_pb2.CountEventsRequest),
        "ReportAlert": (telemetry.ReportAlert, telemetry_pb2.AlertRequest),
        "GetAlert": (telemetry.GetAlert, telemetry_pb2.GetAlertRequest),
    }
    method, message_type = stubs[case.method]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await method(json_format.ParseDict(case.request, message_type()))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = [
        value
        for key, value in info.value.trailing_metadata() or ()
        if key == "grpc-status-details-bin"
    ]
    assert details, "INVALID_ARGUMENT must carry a google.rpc.Status"
    status = status_pb2.Status.FromString(details[0])
    out: list[tuple[str, str]] = []
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            out.extend((v.field, v.description) for v in bad_request.field_violations)
    return out


_FIRST_OF_EACH_METHOD = {c.method: c for c in reversed(CASES)}.values()
_DOOR_CASES = [
    pytest.param(case, door, id=f"{door}-{case.id}")
    for door in DOORS
    for case in CASES
    # Every case through the JSON routes and Connect's JSON; the binary codecs
    # parse differently but validate alike, so one case per method is enough there.
    if door in ("json", "connect") or case in _FIRST_OF_EACH_METHOD
]


@pytest.mark.parametrize(("case", "door"), _DOOR_CASES)
async def test_bad_input_gets_the_same_violations_through_every_door(
    case: BadInput, door: str, http: httpx.AsyncClient, analytics: Analytics, telemetry: Telemetry
) -> None:
    over_grpc = await _over_grpc(case, analytics, telemetry)
    out = await call(http, door, case.method, case.request)
    # gRPC-Web carries the status in trailers, on HTTP 200.
    assert (out.http_status, out.code) == (200 if door == "grpc-web" else 400, 3), out.text
    if door == "json":
        status_of(httpx.Response(400, headers=out.headers, content=out.text.encode()), 400, 3)
    assert out.violations == over_grpc
    field, description = out.violations[0]
    assert field == case.field
    assert case.fragment in description
    assert case.field in out.message


@pytest.mark.parametrize("case", [c for c in CASES if c.method == "TrackEvent"], ids=lambda c: c.id)
async def test_bad_event_in_a_batch_is_rejected_with_the_same_violations(
    case: BadInput, http: httpx.AsyncClient, analytics: Analytics, telemetry: Telemetry
) -> None:
    over_grpc = await _over_grpc(case, analytics, telemetry)
    r = await http.post("/v1/events:batch", json={"events": [{"eventName": "fine"}, case.request]})
    assert r.status_code == 200, r.text
    reply = r.json()
    assert (reply["accepted"], reply["rejected"]) == (1, 1)
    (rejection,) = reply["rejections"]
    assert rejection["index"] == 1
    # Paths gain the event's position; a whole-event violation is the event itself.
    expected = [
        ("events[1]" if field == "request" else f"events[1].{field}", description)
        for field, description in over_grpc
    ]
    got = [(v["field"], v["description"]) for v in rejection["violations"]]
    assert got == expected


async def _count_over_grpc(analytics: Analytics, name: str) -> int:
    reply = await analytics.CountEvents(analytics_pb2.CountEventsRequest(event_name=name))
    return reply.count


async def _count_over_http(http: httpx.AsyncClient, name: str) -> int:
    r = await http.get("/v1/events:count", params={"event_name": name})
    return int(r.json()["count"])


async def test_events_sent_over_http_are_counted_over_grpc(
    http: httpx.AsyncClient, analytics: Analytics
) -> None:
    await http.post("/v1/events", json={"eventName": "via-http"})
    await http.post("/v1/events:batch", json={"events": [{"eventName": "via-http"}] * 3})
    assert await _count_over_grpc(analytics, "via-http") == 4


async def test_events_sent_over_grpc_are_counted_over_http(
    http: httpx.AsyncClient, analytics: Analytics
) -> None:
    await analytics.TrackEvent(analytics_pb2.TrackEventRequest(event_name="via-grpc"))
    await analytics.StreamEvents(iter([analytics_pb2.TrackEventRequest(event_name="via-grpc")] * 2))
    assert await _count_over_http(http, "via-grpc") == 3


async def test_event_id_deduplicates_across_doors(
    http: httpx.AsyncClient, analytics: Analytics
) -> None:
    first = await analytics.TrackEvent(
        analytics_pb2.TrackEventRequest(event_name="both", event_id="shared-1")
    )
    again = (
        await http.post("/v1/events", json={"eventName": "both", "eventId": "shared-1"})
    ).json()
    assert (first.duplicate, again["duplicate"]) == (False, True)
    assert await _count_over_grpc(analytics, "both") == 1


async def test_alert_reported_over_one_door_is_read_over_the_other(
    http: httpx.AsyncClient, telemetry: Telemetry
) -> None:
    r = await http.post(
        "/v1/alerts", json={"deviceId": "d-1", "alertType": "smoke", "timestamp": NOW_MS}
    )
    tracking_id = r.json()["trackingId"]
    alert = await telemetry.GetAlert(telemetry_pb2.GetAlertRequest(tracking_id=tracking_id))
    assert (alert.device_id, alert.alert_type, alert.timestamp) == ("d-1", "smoke", NOW_MS)

    ack = await telemetry.ReportAlert(telemetry_pb2.AlertRequest(device_id="d-2", alert_type="t"))
    over_http = (await http.get(f"/v1/alerts/{ack.tracking_id}")).json()
    over_grpc = await telemetry.GetAlert(telemetry_pb2.GetAlertRequest(tracking_id=ack.tracking_id))
    # The HTTP reply is exactly the gRPC message in proto3 JSON.
    assert over_http == json_format.MessageToDict(
        over_grpc, always_print_fields_with_no_presence=True
    )
