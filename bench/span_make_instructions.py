"""Making and queueing the server's spans alone, in instructions (callgrind): what a traced
call costs the event loop before any export.

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python bench/span_make_instructions.py rpc 3000   # and 1000, and both

(Ir(3000) - Ir(1000)) / 2000 is the instructions per call (bench/notes.md, T1). A call is
the server's own span code, as ``frontends/grpc/endpoints.py`` and ``ingest/commit.py``
run it: ``rpc`` makes the RPC span (start, made current, ended); ``both`` adds a group
commit's span for that call alone (made current, a ``commit`` event, ended), as at one
call in flight. Spans go to the server's batch processor with an exporter that drops them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from eventwire.observability.server_spans import ServerSpans, linked_span
from eventwire.observability.tracing import (
    TRACER_NAME,
    HeadSampling,
    span_processor,
    tracer_provider,
)


class Drop(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def main() -> None:
    shape, count = sys.argv[1], int(sys.argv[2])
    provider = tracer_provider("otlp", processor=span_processor(Drop()))
    assert provider is not None
    tracer = provider.get_tracer(TRACER_NAME)
    door = ServerSpans(
        tracer,
        HeadSampling(tracer),
        "analytics.AnalyticsService/TrackEvent",
        {
            "rpc.system": "grpc",
            "rpc.service": "analytics.AnalyticsService",
            "rpc.method": "TrackEvent",
        },
    )
    ok = door.ending({"rpc.grpc.status_code": 0})

    def call() -> None:
        started = door.start(None)
        assert started is not None
        if shape == "both":
            span = linked_span(
                tracer,
                "eventwire.ingest.batch",
                parent=started.context,
                links=[started.context],
                attributes={"eventwire.requests": 1, "eventwire.rows": 1},
                start_time=time.time_ns(),
            )
            token = otel_context.attach(trace.set_span_in_context(span))
            span.add_event("commit", {"eventwire.rows": 1})
            otel_context.detach(token)
            span.end()
        door.end(started, ok)

    for _ in range(100):  # warm: imports, caches
        call()
    for _ in range(count):
        call()
    provider.shutdown()


if __name__ == "__main__":
    main()
