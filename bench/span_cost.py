"""CPU cost of one OpenTelemetry span in Python, and of exporting it over OTLP.

Why tracing every RPC costs what bench/tracing_overhead.py measures: one
SERVER span created and ended, then (a) no processor, (b) the SDK's batch
processor with an exporter that drops spans, (c) the batch processor with an
exporter that does the OTLP protobuf encoding, as the real one does before
sending. CPU time of the whole process (export thread included) per span.

    .venv/bin/python bench/span_cost.py
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

SPANS = 20_000
ATTRIBUTES = {
    "rpc.system": "grpc",
    "rpc.service": "analytics.AnalyticsService",
    "rpc.method": "TrackEvent",
}


class Drop(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


class Encode(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        encode_spans(spans).SerializeToString()
        return SpanExportResult.SUCCESS


def cpu_per_span(provider: TracerProvider) -> float:
    tracer = provider.get_tracer("bench")
    start = time.process_time()
    for _ in range(SPANS):
        with tracer.start_as_current_span(
            "analytics.AnalyticsService/TrackEvent", kind=SpanKind.SERVER, attributes=ATTRIBUTES
        ) as span:
            span.set_attribute("rpc.grpc.status_code", 0)
    provider.shutdown()  # waits for the export thread
    return (time.process_time() - start) / SPANS * 1e6


def main() -> None:
    rows = [("create and end, no processor", cpu_per_span(TracerProvider()))]
    for label, exporter in (("+ batch processor, dropped", Drop()), ("+ OTLP encoding", Encode())):
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(exporter))
        rows.append((label, cpu_per_span(provider)))
    print("| one span | CPU µs |\n|---|---|")
    for label, micros in rows:
        print(f"| {label} | {micros:.1f} |")


if __name__ == "__main__":
    main()
