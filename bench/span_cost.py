"""CPU cost of one OpenTelemetry span in Python, and of exporting it over OTLP.

Why tracing every RPC costs what bench/tracing_overhead.py measures: one
SERVER span created and ended, then (a) no processor, (b) the SDK's batch
processor with an exporter that drops spans, (c) the batch processor with an
exporter that does the SDK's OTLP protobuf encoding, as the SDK's exporter
(which the server's ``--trace-exporter otlp`` uses) does before sending. Each
with ``start_as_current_span`` (a context manager) and with
``start_span`` plus context attach/detach (what the server's interceptor
does). CPU time of the whole process (export thread included) per span; the
machine's noise shows in the spread, so each figure is the median of 5 runs.

    .venv/bin/python bench/span_cost.py      # the table; records to bench/results/history.jsonl
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

from _harness import Run, publish, record
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import SpanKind, Tracer

SPANS = 10_000
RUNS = 5
NAME = "analytics.AnalyticsService/TrackEvent"
ATTRIBUTES = {
    "rpc.system": "grpc",
    "rpc.service": "analytics.AnalyticsService",
    "rpc.method": "TrackEvent",
}


class Drop(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


class SdkEncode(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        encode_spans(spans).SerializeToString()
        return SpanExportResult.SUCCESS


def context_manager(tracer: Tracer) -> None:
    for _ in range(SPANS):
        kind = SpanKind.SERVER
        with tracer.start_as_current_span(NAME, kind=kind, attributes=ATTRIBUTES) as span:
            span.set_attribute("rpc.grpc.status_code", 0)


def attach_detach(tracer: Tracer) -> None:
    for _ in range(SPANS):
        span = tracer.start_span(NAME, kind=SpanKind.SERVER, attributes=ATTRIBUTES)
        token = otel_context.attach(trace.set_span_in_context(span))
        otel_context.detach(token)
        span.set_attribute("rpc.grpc.status_code", 0)
        span.end()


def cpu_per_span(exporter: SpanExporter | None, make: Callable[[Tracer], None]) -> float:
    runs = []
    for _ in range(RUNS):
        provider = TracerProvider()
        if exporter is not None:
            # A queue that holds every span: none is dropped unmeasured.
            provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=SPANS))
        tracer = provider.get_tracer("bench")
        start = time.process_time()
        make(tracer)
        provider.shutdown()  # waits for the export thread
        runs.append((time.process_time() - start) / SPANS * 1e6)
    return statistics.median(runs)


def main() -> None:
    rows = (
        ("create and end, no processor", None),
        ("+ batch processor, dropped", Drop()),
        ("+ the SDK's OTLP encoding", SdkEncode()),
    )
    this = Run.now("in process, not pinned")
    records = []
    print("| one span | CPU µs, start_as_current_span | CPU µs, start_span + attach |")
    print("|---|---|---|")
    for label, exporter in rows:
        managed = cpu_per_span(exporter, context_manager)
        attached = cpu_per_span(exporter, attach_detach)
        print(f"| {label} | {managed:.1f} | {attached:.1f} |")
        metrics = {"cpu_us_start_as_current_span": managed, "cpu_us_start_span_attach": attached}
        records.append(record(this, "span_cost", label, metrics, spans=SPANS, runs=RUNS))
    publish(records)


if __name__ == "__main__":
    main()
