"""The fast OTLP encoder builds the very request the SDK's exporter builds, for every kind
of span the SDK can make: an SDK upgrade that changes its encoding fails here."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import AttributeValue

from eventwire.observability.otlp_encoding import FastOTLPSpanExporter, encode_spans
from eventwire.observability.server_spans import ServerSpans, linked_span
from eventwire.observability.tracing import HeadSampling, resource, tracer_provider

EVERY_TYPE: dict[str, AttributeValue] = {
    "str": "s",
    "empty": "",
    "bool": True,
    "false": False,
    "int": 7,
    "zero": 0,
    "negative": -(2**63),
    "largest": 2**63 - 1,
    "long": "x" * 300,  # lengths past one varint byte
    "float": 2.5,
    "bytes": b"\x00\xff",
    "strs": ("a", "b"),
    "bools": (True, False),
    "ints": (1, -2),
    "floats": (0.5, -1.0),
    "empty tuple": (),
}
FALLBACK = logging.getLogger("eventwire.observability.otlp_encoding")
REMOTE = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(1))
LOCAL = SpanContext(
    0x1234,
    0x5678,
    is_remote=False,
    trace_flags=TraceFlags(1),
    trace_state=TraceState([("vendor", "v1"), ("other", "x")]),
)


def sdk_spans() -> list[ReadableSpan]:
    """Spans through the SDK's own span object: every field the API can set."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource({"service.name": "a", "n": 1}, "https://schema/a"),
        span_limits=SpanLimits(
            max_span_attributes=20,
            max_events=2,
            max_links=2,
            max_event_attributes=1,
            max_link_attributes=1,
        ),
    )
    provider.add_span_processor(SimpleSpanProcessor(memory))
    scoped = provider.get_tracer("scoped", "1.2", "https://schema/s", {"scope.attr": 3})
    plain = provider.get_tracer("plain")
    for kind in SpanKind:
        with plain.start_as_current_span(f"kind {kind.name}", kind=kind, attributes=EVERY_TYPE):
            pass
    context = trace.set_span_in_context(trace.NonRecordingSpan(REMOTE))
    span = scoped.start_span(
        "remote parent",
        context=context,
        links=[Link(LOCAL, {"k": 1}), Link(LOCAL), Link(REMOTE, {"link": "a", "more": 2})],
    )
    for n in range(3):
        span.add_event(f"event {n}", {"n": n, "list": (1, 2)})
    span.add_event("bare")
    span.set_status(Status(StatusCode.ERROR, "broken"))
    span.set_attributes({f"many {n}": n for n in range(25)})  # past the limit: dropped
    span.end()
    local = plain.start_span(
        "local parent", context=trace.set_span_in_context(trace.NonRecordingSpan(LOCAL))
    )
    local.set_status(Status(StatusCode.OK))
    local.record_exception(ValueError("boom"))
    local.end()
    with (
        plain.start_as_current_span("parent"),
        plain.start_as_current_span("child", attributes={"unicode": "zé 字 🙂"}),
    ):
        pass
    return list(memory.get_finished_spans())


def eventwire_spans(calls: int) -> list[ReadableSpan]:
    """The server's own spans, as its door and group commit make them."""
    memory = InMemorySpanExporter()
    provider = tracer_provider("none", processor=SimpleSpanProcessor(memory))
    assert provider is not None
    tracer = provider.get_tracer("eventwire")
    door = ServerSpans(tracer, HeadSampling(tracer), "svc/Track", {"rpc.system": "grpc"})
    ok, failed = door.ending({"rpc.grpc.status_code": 0}), door.ending({"x": 13}, "INTERNAL")
    for n in range(calls):
        started = door.start(None)
        assert started is not None
        batch = linked_span(
            tracer,
            "batch",
            parent=started.context,
            links=[started.context],
            attributes={"rows": n},
            start_time=time.time_ns(),
        )
        batch.add_event("commit", {"rows": n})
        if n % 2:
            batch.record_exception(RuntimeError("disk"))
        batch.end()
        door.end(started, failed if n % 2 else ok)
    return list(memory.get_finished_spans())


def hand_made() -> list[ReadableSpan]:
    """``ReadableSpan``s built directly: what no tracer makes but an exporter may get."""
    scope = InstrumentationScope("direct", None, None, None)
    other = Resource({"service.name": "b"})
    return [
        ReadableSpan("no scope", LOCAL, resource=other, attributes={"none in": (1, None)}),
        ReadableSpan(
            "mapping",
            REMOTE,
            parent=LOCAL,
            resource=other,
            attributes={"map": {"a": 1, "b": ("x",), "c": {"d": b"e"}}, "none": None},
            events=[Event("e", None, 5)],
            links=[Link(REMOTE, {"w": 1.5})],
            kind=SpanKind.CONSUMER,
            status=Status(StatusCode.UNSET, None),
            start_time=1,
            end_time=2,
            instrumentation_scope=scope,
        ),
        # Equal to the first resource but another object: the SDK groups them together.
        ReadableSpan("equal resource", REMOTE, resource=Resource({"service.name": "b"})),
        # Equal values of other types under one key (1 == True == 1.0, 0.0 == -0.0).
        *(
            ReadableSpan("same key", REMOTE, resource=other, attributes={"v": value})
            for value in (1, True, 1.0, 0.0, -0.0, 0, False, "1")
        ),
    ]


def both(
    spans: Sequence[ReadableSpan],
) -> tuple[ExportTraceServiceRequest, ExportTraceServiceRequest]:
    return sdk_encode(spans), encode_spans(spans)


def assert_same(spans: Sequence[ReadableSpan], caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, FALLBACK.name):
        sdk, ours = both(spans)
    assert not [r for r in caplog.records if r.name == FALLBACK.name]  # not the SDK's, again
    assert ours == sdk
    # Equal field by field, and byte for byte (empty messages present in both, say).
    assert ours.SerializeToString(deterministic=True) == sdk.SerializeToString(deterministic=True)


@pytest.mark.parametrize(
    "make",
    [sdk_spans, lambda: eventwire_spans(6), hand_made, lambda: [*hand_made(), *sdk_spans()]],
    ids=["sdk", "eventwire", "hand-made", "mixed"],
)
def test_the_request_is_the_sdks(make: object, caplog: pytest.LogCaptureFixture) -> None:
    spans = make()  # type: ignore[operator]
    assert len(spans) >= 3
    assert_same(spans, caplog)
    assert_same(spans[::-1], caplog)
    assert_same(spans[:1], caplog)


def test_an_empty_batch(caplog: pytest.LogCaptureFixture) -> None:
    assert_same([], caplog)


def test_the_exporter_translates_as_the_sdks_does() -> None:
    spans = [*sdk_spans(), *eventwire_spans(2)]
    sdk = OTLPSpanExporter(endpoint="127.0.0.1:9", insecure=True)
    ours = FastOTLPSpanExporter(endpoint="127.0.0.1:9", insecure=True)
    try:
        assert ours._translate_data(spans) == sdk._translate_data(spans)
    finally:
        sdk.shutdown()
        ours.shutdown()


def test_what_protobuf_refuses_falls_back_to_the_sdks_encoder(
    caplog: pytest.LogCaptureFixture,
) -> None:
    huge = ReadableSpan("huge", LOCAL, resource=resource(), attributes={"ok": 1, "big": 2**64})
    with caplog.at_level(logging.DEBUG, FALLBACK.name):
        sdk, ours = both([huge])
    assert [r.name for r in caplog.records].count(FALLBACK.name) == 1
    assert ours == sdk
    assert [kv.key for kv in ours.resource_spans[0].scope_spans[0].spans[0].attributes] == ["ok"]
