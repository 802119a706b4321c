"""Span exporters and a real OTLP collector for the tracing tests."""

from tests.support.observability import collector, exporter, provider  # noqa: F401 - fixtures
