"""Client spans and metrics: the call, its attempts, and where they lead on the server."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

import eventwire.client as ec
from eventwire.testing import no_backoff, running_server
from tests.support.scripted import Fail, Ok, scripted_server


def named(spans: tuple[ReadableSpan, ...], name: str, kind: SpanKind) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name and s.kind == kind]


async def test_one_trace_from_the_client_call_to_the_commit(
    tmp_path: Path, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    async with (
        running_server(traces=provider, store=f"sqlite:///{tmp_path / 'e.db'}") as srv,
        ec.AnalyticsClient(srv.address, timeout=5, tracer_provider=provider) as client,
    ):
        await client.track_event("traced", "u1")
    spans = exporter.get_finished_spans()
    method = "analytics.AnalyticsService/TrackEvent"
    (call,) = named(spans, method, SpanKind.INTERNAL)
    (attempt,) = named(spans, method, SpanKind.CLIENT)
    (rpc,) = named(spans, method, SpanKind.SERVER)
    (batch,) = [s for s in spans if s.name == "eventwire.ingest.batch"]
    assert len({s.context.trace_id for s in (call, attempt, rpc, batch)}) == 1
    assert attempt.parent is not None
    assert attempt.parent.span_id == call.context.span_id
    assert rpc.parent is not None
    assert rpc.parent.span_id == attempt.context.span_id  # across the wire, via traceparent
    assert batch.parent is not None
    assert batch.parent.span_id == rpc.context.span_id
    assert [event.name for event in batch.events] == ["commit"]  # no span per transaction
    assert call.attributes is not None
    assert (call.attributes["eventwire.attempts"], call.attributes["rpc.grpc.status_code"]) == (
        1,
        0,
    )
    assert call.attributes["eventwire.breaker.state"] == "closed"


async def test_retries_show_as_attempt_spans_events_and_metrics(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    metrics = ec.ClientMetrics()
    with no_backoff():
        async with scripted_server() as server:
            server.script.play("TrackEvent", [Fail(), Fail(), Ok()])
            async with ec.AnalyticsClient(
                server.address, timeout=5, tracer_provider=provider, metrics=metrics
            ) as client:
                await client.track_event("retried", "u1")
    spans = exporter.get_finished_spans()
    method = "analytics.AnalyticsService/TrackEvent"
    (call,) = named(spans, method, SpanKind.INTERNAL)
    attempts = named(spans, method, SpanKind.CLIENT)
    assert [a.attributes["rpc.grpc.status_code"] for a in attempts if a.attributes] == [14, 14, 0]
    assert all(a.parent is not None and a.parent.span_id == call.context.span_id for a in attempts)
    assert [e.name for e in call.events] == ["retry", "retry"]
    # Each attempt carried its own span as traceparent.
    sent = [seen.metadata.get("traceparent", "") for seen in server.script.calls("TrackEvent")]
    assert [t.split("-")[2] for t in sent] == [format(a.context.span_id, "016x") for a in attempts]
    sample = metrics.registry.get_sample_value
    full = "/analytics.AnalyticsService/TrackEvent"
    assert sample("eventwire_client_attempts_total", {"method": full, "code": "UNAVAILABLE"}) == 2
    assert sample("eventwire_client_attempts_total", {"method": full, "code": "OK"}) == 1
    assert sample("eventwire_client_retries_total", {"method": full}) == 2


async def test_breaker_transitions_and_tracker_counters_are_exported(tmp_path: Path) -> None:
    metrics = ec.ClientMetrics()
    breaker = ec.CircuitBreaker(
        ec.CircuitBreakerPolicy(window_size=2, minimum_calls=2, open_duration=60), name="edge"
    )
    with no_backoff():
        async with scripted_server() as server:
            server.script.play("CountEvents", [Fail(), Fail(), Fail(), Fail()])
            async with ec.AnalyticsClient(
                server.address, timeout=5, breaker=breaker, metrics=metrics, retry=None
            ) as client:
                for _ in range(3):
                    with pytest.raises(ec.UnavailableError):
                        await client.count_events("x")
    sample = metrics.registry.get_sample_value
    assert sample("eventwire_client_breaker_state", {"breaker": "edge"}) == 2  # open
    assert (
        sample("eventwire_client_breaker_transitions_total", {"breaker": "edge", "state": "open"})
        == 1
    )

    async with (
        running_server(store=f"sqlite:///{tmp_path / 'e.db'}") as srv,
        ec.Tracker(srv.address) as tracker,
    ):
        metrics.watch_tracker(tracker)
        for i in range(7):
            tracker.track("tracked", user_id=f"u{i}")
        assert await tracker.flush(10)
        assert sample("eventwire_tracker_tracked_total", {"target": srv.address}) == 7
        assert sample("eventwire_tracker_acked_total", {"target": srv.address}) == 7
        assert sample("eventwire_tracker_outstanding", {"target": srv.address}) == 0
