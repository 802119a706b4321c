"""``eventwire serve`` that samples every trace and exports its spans nowhere.

bench/tracing_overhead.py's "unexported" variant: the server gets an SDK
``TracerProvider`` with no span processor in place of the one
``--trace-exporter`` builds, so every span is created, recorded and ended as
with tracing on, and then dropped. What that variant costs is the SDK's span
objects alone: the floor under any exporter, however fast.

    python bench/_unexported_spans.py serve --trace-exporter otlp ...
"""

from __future__ import annotations

import sys

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

from eventwire.runtime import server as app
from eventwire.runtime.cli import main


def _unexported(
    exporter: str, service_name: str = "eventwire", processor: SpanProcessor | None = None
) -> TracerProvider | None:
    if exporter == "none" and processor is None:
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if processor is not None:
        provider.add_span_processor(processor)
    return provider


app.tracer_provider = _unexported
sys.exit(main())
