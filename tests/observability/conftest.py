from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from eventwire.observability.tracing import tracer_provider


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    """Finished spans, kept in memory for the test to read."""
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    """A tracer provider exporting synchronously into ``exporter``."""
    made = tracer_provider("none", processor=SimpleSpanProcessor(exporter))
    assert made is not None
    return made
