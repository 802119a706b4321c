"""Root calls' spans, made without the SDK's span object, as a real OTLP receiver gets them
from a server process: the same fields a span from the SDK's own path carries."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

from eventwire.api import analytics_pb2, analytics_pb2_grpc
from eventwire.testing._process import ServerProcess
from tests.support.observability import Collector

RPC = "analytics.AnalyticsService/TrackEvent"


class Spans(Collector):
    """The collector, keeping every span whole."""

    def __init__(self) -> None:
        super().__init__()
        self.whole: list[trace_pb2.Span] = []

    async def Export(
        self,
        request: trace_service_pb2.ExportTraceServiceRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                self.whole.extend(scope.spans)
        return await super().Export(request, context)


@pytest.fixture
async def spans() -> AsyncIterator[tuple[Spans, int]]:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    receiver = Spans()
    # opentelemetry-proto's generated gRPC module is untyped.
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield receiver, port
    await server.stop(0)


def _attributes(span: trace_pb2.Span) -> dict[str, object]:
    values: dict[str, object] = {}
    for kv in span.attributes:
        kind = kv.value.WhichOneof("value")
        values[kv.key] = getattr(kv.value, kind) if kind else None
    return values


async def test_root_calls_reach_the_receiver_as_whole_spans_linked_by_their_commits(
    tmp_path: Path, spans: tuple[Spans, int]
) -> None:
    receiver, port = spans
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
    }
    proc = ServerProcess(
        "--store", f"sqlite:///{tmp_path / 'e.db'}", "--trace-exporter", "otlp", env=env
    ).start()
    try:
        async with grpc.aio.insecure_channel(proc.address) as channel:
            stub = analytics_pb2_grpc.AnalyticsServiceStub(channel)
            await asyncio.gather(
                *(
                    stub.TrackEvent(analytics_pb2.TrackEventRequest(event_name="e"))
                    for _ in range(20)
                )
            )
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.TrackEvent(analytics_pb2.TrackEventRequest(event_name=""))
        proc.terminate()  # the drain flushes the batched spans
        assert await asyncio.to_thread(proc.wait) == 0
    finally:
        proc.kill()
    rpcs = [s for s in receiver.whole if s.name == RPC]
    batches = [s for s in receiver.whole if s.name == "eventwire.ingest.batch"]
    assert len(rpcs) == 21
    assert len({s.trace_id for s in rpcs}) == 21  # every root call its own trace
    for span in rpcs:
        assert span.parent_span_id == b""
        assert len(span.trace_id) == 16
        assert len(span.span_id) == 8
        assert span.kind == trace_pb2.Span.SPAN_KIND_SERVER
        assert 0 < span.start_time_unix_nano <= span.end_time_unix_nano
        assert span.status.code == trace_pb2.Status.STATUS_CODE_UNSET
    codes = sorted(_attributes(s)["rpc.grpc.status_code"] for s in rpcs)  # type: ignore[type-var]
    assert codes == [0] * 20 + [grpc.StatusCode.INVALID_ARGUMENT.value[0]]
    assert {
        (a["rpc.system"], a["rpc.service"], a["rpc.method"]) for a in map(_attributes, rpcs)
    } == {("grpc", "analytics.AnalyticsService", "TrackEvent")}
    # The 20 stored calls are linked by the commits that carried them, each once,
    # and each commit hangs under the first call it links, in that call's trace.
    stored = {s.span_id for s in rpcs if _attributes(s)["rpc.grpc.status_code"] == 0}
    linked = [link.span_id for batch in batches for link in batch.links]
    assert sorted(linked) == sorted(stored)
    by_id = {s.span_id: s for s in rpcs}
    for batch in batches:
        parent = by_id[batch.parent_span_id]
        assert batch.trace_id == parent.trace_id
        assert batch.links[0].span_id == parent.span_id
        assert [e.name for e in batch.events] == ["commit"]
        assert _attributes(batch)["eventwire.requests"] == len(batch.links)
