"""Health (Check, Watch and List) and reflection (v1 and v1alpha) as standard clients use them."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.rpc import status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2 as alpha

from eventwire.api import analytics_pb2, analytics_pb2_grpc
from tests.support.probes import SERVING

REFLECTION = {
    "v1": "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "v1alpha": "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
}


async def reflect(
    channel: grpc.aio.Channel, protocol: str, **request: Any
) -> alpha.ServerReflectionResponse:
    # v1 and v1alpha are the same messages under two package names, so one set
    # of message classes speaks both (grpcio-reflection ships only v1alpha's).
    call = channel.stream_stream(
        REFLECTION[protocol],
        request_serializer=alpha.ServerReflectionRequest.SerializeToString,
        response_deserializer=alpha.ServerReflectionResponse.FromString,
    )
    replies = [
        reply async for reply in call(iter([alpha.ServerReflectionRequest(**request)]), timeout=5)
    ]
    assert len(replies) == 1
    reply: alpha.ServerReflectionResponse = replies[0]
    assert not reply.HasField("error_response"), reply.error_response
    return reply


async def test_health_list_reports_every_service_and_its_status(channel: grpc.aio.Channel) -> None:
    stub: Any = health_pb2_grpc.HealthStub(channel)
    list_request: Any = health_pb2.HealthListRequest  # type: ignore[attr-defined]
    reply = await stub.List(list_request(), timeout=5)
    statuses = {name: r.status for name, r in reply.statuses.items()}
    assert statuses == {
        "": SERVING,
        "analytics.AnalyticsService": SERVING,
        "telemetry.TelemetryService": SERVING,
        "eventwire.plans.v1.PlansService": SERVING,
        "liveness": SERVING,
    }


@pytest.mark.parametrize("protocol", ["v1", "v1alpha"])
async def test_reflection_lists_the_api_health_and_both_reflection_services(
    channel: grpc.aio.Channel, protocol: str
) -> None:
    reply = await reflect(channel, protocol, list_services="")
    names = {s.name for s in reply.list_services_response.service}
    assert names == {
        "analytics.AnalyticsService",
        "telemetry.TelemetryService",
        "eventwire.plans.v1.PlansService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    }
    for name in names:  # each listed service is resolvable, v1's own included
        found = await reflect(channel, protocol, file_containing_symbol=name)
        assert found.file_descriptor_response.file_descriptor_proto


async def test_error_details_are_rendered_from_reflection_v1_alone(
    analytics: analytics_pb2_grpc.AnalyticsServiceAsyncStub, channel: grpc.aio.Channel
) -> None:
    """What grpcurl and similar tools do with a failed call's status details."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await analytics.TrackEvent(analytics_pb2.TrackEventRequest(event_name=""))
    trailers = dict(info.value.trailing_metadata() or ())
    status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    (detail,) = status.details
    symbol = detail.type_url.rpartition("/")[2]
    assert symbol == "google.rpc.BadRequest"

    # A pool that knows nothing but what reflection sends: the detail's file
    # and its imports, resolved by symbol and then by file name.
    pool = descriptor_pool.DescriptorPool()
    reply = await reflect(channel, "v1", file_containing_symbol=symbol)
    files = {
        f.name: f
        for f in map(
            descriptor_pb2.FileDescriptorProto.FromString,
            reply.file_descriptor_response.file_descriptor_proto,
        )
    }
    added: set[str] = set()

    async def add(name: str) -> None:
        if name in added:
            return
        if name not in files:
            more = await reflect(channel, "v1", file_by_filename=name)
            for raw in more.file_descriptor_response.file_descriptor_proto:
                f = descriptor_pb2.FileDescriptorProto.FromString(raw)
                files.setdefault(f.name, f)
        for dependency in files[name].dependency:
            await add(dependency)
        pool.Add(files[name])
        added.add(name)

    await add("google/rpc/error_details.proto")
    bad_request = message_factory.GetMessageClass(pool.FindMessageTypeByName(symbol))()
    assert detail.Unpack(bad_request)
    (violation,) = json_format.MessageToDict(bad_request)["fieldViolations"]
    assert violation["field"] == "event_name"
    assert violation["description"]
