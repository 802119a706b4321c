"""The export thread's encoding alone, in instructions (callgrind): turning our real spans
into an ``ExportTraceServiceRequest`` and its bytes, the SDK's encoder against ours.

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python bench/otlp_encode_instructions.py sdk 20   # and 0, and ours

Run with N and with 0 exports; (Ir(N) - Ir(0)) / (N * SPANS) is the instructions per span,
free of the machine's noise (bench/notes.md, T1). The spans are what the server makes at
one call in flight, by its own code (``ServerSpans``, ``linked_span``): per call one RPC
span (4 attributes) and one group commit's span (2 attributes, a ``commit`` event, a link
to the call). ``SPANS`` spans go per export: what the batch processor hands the exporter
when calls arrive faster than one per 10 ms (its 5 s schedule, at most 512 a batch).
``--serialize`` adds ``SerializeToString`` (what grpc's stub does with the request next);
``--only rpc`` or ``--only commit`` exports 256 spans of that kind alone, and ``--bare``
gives the RPC spans no attributes (what the attributes cost).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from eventwire.observability.otlp_encoding import encode_spans as ours
from eventwire.observability.server_spans import ServerSpans, linked_span
from eventwire.observability.tracing import TRACER_NAME, HeadSampling, tracer_provider

SPANS = 256
ENCODERS = {"sdk": encode_spans, "ours": ours}


def server_spans(calls: int, *, bare: bool = False) -> Sequence[ReadableSpan]:
    """``calls`` unary calls' spans, as the server's door and group commit make them."""
    memory = InMemorySpanExporter()
    provider = tracer_provider("none", processor=SimpleSpanProcessor(memory))
    assert provider is not None
    tracer = provider.get_tracer(TRACER_NAME)
    door = ServerSpans(
        tracer,
        HeadSampling(tracer),
        "analytics.AnalyticsService/TrackEvent",
        {}
        if bare
        else {
            "rpc.system": "grpc",
            "rpc.service": "analytics.AnalyticsService",
            "rpc.method": "TrackEvent",
        },
    )
    ok = door.ending({} if bare else {"rpc.grpc.status_code": 0})
    for _ in range(calls):
        started = door.start(None)
        assert started is not None
        batch = linked_span(
            tracer,
            "eventwire.ingest.batch",
            parent=started.context,
            links=[started.context],
            attributes={"eventwire.requests": 1, "eventwire.rows": 1},
            start_time=time.time_ns(),
        )
        batch.add_event("commit", {"eventwire.rows": 1})
        batch.end()
        door.end(started, ok)
    return memory.get_finished_spans()


def main() -> None:
    encoder, count = ENCODERS[sys.argv[1]], int(sys.argv[2])
    serialize = "--serialize" in sys.argv
    only = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None
    spans = server_spans(SPANS if only else SPANS // 2, bare="--bare" in sys.argv)
    if only:
        spans = [s for s in spans if (s.name == "eventwire.ingest.batch") == (only == "commit")]
    encoder(spans).SerializeToString()  # warm: imports, caches
    for _ in range(count):
        request = encoder(spans)
        if serialize:
            request.SerializeToString()


if __name__ == "__main__":
    main()
