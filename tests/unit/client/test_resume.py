"""The resumable-stream state machine (client/_resume.py) and the read requests, without I/O."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import grpc
import pytest
from grpc.aio import Metadata

import eventwire.client as ec
from eventwire.api import analytics_pb2, telemetry_pb2
from eventwire.client import (
    CircuitOpenError,
    ClientConfig,
    RetryEvent,
    RetryPolicy,
    backoff,
)
from eventwire.client._base import _enum, _next_page, _Rpc
from eventwire.client._core import Resilience, StreamVerdict
from eventwire.client._exceptions import error_for
from eventwire.client._resume import Resumption

S = grpc.StatusCode
METHOD = "/telemetry.TelemetryService/WatchAlerts"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _resilience(clock: FakeClock | None = None, **config: Any) -> Resilience:
    config.setdefault("rng", random.Random(7))  # noqa: S311 - jitter, not cryptography
    return Resilience("t", ClientConfig(**config), clock=clock or FakeClock(), default_timeout=2.0)


def _requests(cursor: str) -> str:
    return f"after={cursor}"


def _error(code: grpc.StatusCode, pushback: str | None = None) -> ec.RpcError:
    trailing = Metadata(("grpc-retry-pushback-ms", pushback)) if pushback is not None else None
    return error_for(code, "boom", trailing_metadata=trailing)


def test_each_call_resumes_after_the_last_cursor_handed_out() -> None:
    state = Resumption(_resilience(), METHOD, _requests, after="c0")
    assert state.next_request() == ("after=c0", None)  # no deadline by default
    state.delivered("c1")
    state.delivered("c2")
    assert state.cursor == "c2"
    assert state.failed(_error(S.UNAVAILABLE)) is not None
    assert state.next_request() == ("after=c2", None)


def test_reconnect_delays_are_the_retry_policys_backoff_and_restart_after_a_message() -> None:
    policy = RetryPolicy(initial_backoff=0.1, max_backoff=0.4, jitter="full")
    state = Resumption(_resilience(retry=policy, rng=random.Random(3)), METHOD, _requests)  # noqa: S311
    draws = random.Random(3)  # noqa: S311 - the same draws, to check them
    # Far beyond max_attempts (4): a stream keeps reconnecting, capped at max_backoff.
    delays = [state.failed(_error(S.UNAVAILABLE)) for _ in range(8)]
    assert delays == [backoff(policy, n, draws.random()) for n in range(1, 9)]
    assert all(d is not None and d <= 0.4 for d in delays)
    assert state.reconnects == 8
    state.delivered("c1")
    assert state.failures == 0
    assert state.failed(_error(S.UNAVAILABLE)) == backoff(policy, 1, draws.random())


@pytest.mark.parametrize(
    "code",
    [
        S.OUT_OF_RANGE,
        S.INVALID_ARGUMENT,
        S.PERMISSION_DENIED,
        S.UNAUTHENTICATED,
        S.NOT_FOUND,
        S.DEADLINE_EXCEEDED,
        S.INTERNAL,
    ],
)
def test_errors_a_reconnect_cannot_get_past_are_raised(code: grpc.StatusCode) -> None:
    state = Resumption(_resilience(), METHOD, _requests)
    assert state.failed(_error(code)) is None
    assert state.reconnects == 0


def test_the_retryable_codes_are_the_policys() -> None:
    policy = dataclasses.replace(RetryPolicy(), retryable_codes={S.UNAVAILABLE, S.INTERNAL})
    state = Resumption(_resilience(retry=policy), METHOD, _requests)
    assert state.failed(_error(S.INTERNAL)) is not None
    assert state.failed(_error(S.RESOURCE_EXHAUSTED)) is None


def test_retry_none_turns_reconnects_off() -> None:
    state = Resumption(_resilience(retry=None), METHOD, _requests)
    assert state.failed(_error(S.UNAVAILABLE)) is None


def test_server_pushback_wins_and_a_refusal_is_raised() -> None:
    state = Resumption(_resilience(), METHOD, _requests)
    assert state.failed(_error(S.RESOURCE_EXHAUSTED, "1500")) == 1.5
    assert state.failed(_error(S.RESOURCE_EXHAUSTED, "-1")) is None


def test_an_open_circuit_is_waited_out() -> None:
    clock = FakeClock()
    state = Resumption(_resilience(clock), METHOD, _requests)
    error = CircuitOpenError("t", half_open_at=clock.now + 4.0, now=clock.now)
    delay = state.failed(error)
    assert delay is not None
    assert delay >= 4.0


def test_an_ok_end_ends_an_export_and_is_reconnected_for_a_watch() -> None:
    export = Resumption(_resilience(), METHOD, _requests, ends=True)
    assert export.ended() is None
    watch = Resumption(_resilience(), METHOD, _requests, ends=False)
    delay = watch.ended()
    assert delay is not None
    assert watch.failures == 1  # an OK end that repeats backs off like a failure


def test_the_timeout_bounds_the_whole_stream() -> None:
    clock = FakeClock()
    policy = RetryPolicy(initial_backoff=1.0, max_backoff=1.0, jitter="none")
    state = Resumption(_resilience(clock, retry=policy), METHOD, _requests, timeout=10.0)
    assert state.next_request() == ("after=", 10.0)
    clock.now += 4.0
    assert state.next_request() == ("after=", 6.0)
    assert state.failed(_error(S.UNAVAILABLE)) == 1.0
    clock.now += 5.5
    # 0.5 s left: a 1 s sleep would end after the deadline, so the error is raised now.
    assert state.failed(_error(S.UNAVAILABLE)) is None
    clock.now += 1.0
    with pytest.raises(ec.DeadlineExceededError):
        state.next_request()


def test_a_stopped_stream_makes_no_more_calls() -> None:
    state = Resumption(_resilience(), METHOD, _requests)
    call = object()
    state.opened(call)
    assert state.stop() is call
    assert state.stopped
    assert state.failed(_error(S.CANCELLED)) is None
    assert state.ended() is None


def test_each_reconnect_reaches_the_on_retry_hook_and_the_metric() -> None:
    seen: list[RetryEvent] = []

    def hook(event: RetryEvent) -> None:
        seen.append(event)
        raise RuntimeError("a broken hook changes nothing")

    metrics = ec.ClientMetrics()
    state = Resumption(_resilience(on_retry=hook, metrics=metrics), METHOD, _requests)
    first = state.failed(_error(S.UNAVAILABLE))
    second = state.failed(_error(S.UNAVAILABLE))
    assert [(e.method, e.retry, e.code, e.delay) for e in seen] == [
        (METHOD, 1, S.UNAVAILABLE, first),
        (METHOD, 2, S.UNAVAILABLE, second),
    ]
    assert (
        metrics.registry.get_sample_value("eventwire_client_retries_total", {"method": METHOD}) == 2
    )


# -- the request pieces the twins share ------------------------------------------------


def test_list_alerts_follows_next_page_token_to_the_end() -> None:
    first = telemetry_pb2.ListAlertsRequest(
        device_id="d", page_size=3, min_severity=telemetry_pb2.SEVERITY_CRITICAL
    )
    rpc: _Rpc[Any] = _Rpc("ListAlerts", "/telemetry.TelemetryService/ListAlerts", first, 1.0)
    following = _next_page(rpc, telemetry_pb2.ListAlertsResponse(next_page_token="p2"))  # noqa: S106
    assert following is not None
    assert following.request.page_token == "p2"  # noqa: S105 - a page token
    assert (following.request.device_id, following.request.page_size) == ("d", 3)
    assert following.request.min_severity == telemetry_pb2.SEVERITY_CRITICAL
    assert (following.method, following.timeout) == (rpc.method, 1.0)
    assert rpc.request.page_token == ""  # the first page's request is not changed
    assert _next_page(following, telemetry_pb2.ListAlertsResponse()) is None


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("hour", analytics_pb2.BUCKET_HOUR),
        ("BUCKET_DAY", analytics_pb2.BUCKET_DAY),
        ("Minute", analytics_pb2.BUCKET_MINUTE),
        (analytics_pb2.BUCKET_MINUTE, analytics_pb2.BUCKET_MINUTE),
        (7, 7),  # an unknown number is the server's to refuse, naming the field
    ],
)
def test_enum_values_by_name_or_number(given: Any, expected: int) -> None:
    assert _enum(analytics_pb2.Bucket, "BUCKET_", given, "bucket") == expected


def test_an_unknown_name_is_refused_before_any_call() -> None:
    with pytest.raises(ValueError, match="bucket must be one of none, minute, hour, day"):
        _enum(analytics_pb2.Bucket, "BUCKET_", "week", "bucket")
    with pytest.raises(ValueError, match="min_severity must be one of unspecified, info"):
        _enum(telemetry_pb2.Severity, "SEVERITY_", "loud", "min_severity")
    with pytest.raises(TypeError, match="severity"):
        _enum(telemetry_pb2.Severity, "SEVERITY_", True, "severity")


def test_out_of_range_names_where_to_resume() -> None:
    message = (
        "after points before the oldest position still stored (older rows were deleted by "
        "retention); resume from 'AQAAAbc-_' to continue with what is kept"
    )
    error = error_for(S.OUT_OF_RANGE, message)
    assert isinstance(error, ec.OutOfRangeError)
    assert error.resume_from == "AQAAAbc-_"
    assert error_for(S.OUT_OF_RANGE, "no hint").resume_from is None  # type: ignore[attr-defined]


# -- the breaker's verdict on a resumable stream --------------------------------------


def _half_open() -> tuple[Resilience, ec.CircuitBreaker, FakeClock]:
    clock = FakeClock()
    policy = ec.CircuitBreakerPolicy(minimum_calls=1, window_size=1, half_open_calls=2)
    breaker = ec.CircuitBreaker(policy, clock=clock)
    res = _resilience(clock, breaker=breaker)
    failing = res.plan(METHOD, None, retries=False)
    permit, _ = failing.start_attempt()
    failing.failed(permit, S.UNAVAILABLE, None)
    clock.now += policy.open_duration
    assert breaker.state is ec.BreakerState.HALF_OPEN
    return res, breaker, clock


def test_a_served_stream_settles_its_trial_at_once() -> None:
    res, breaker, _ = _half_open()
    watch = res.plan(METHOD, None, retries=False, default_timeout=False)
    verdict = StreamVerdict(watch, watch.start_attempt()[0])
    verdict.answered()
    verdict.answered()  # once only
    other = res.plan(METHOD, None)
    permit, _ = other.start_attempt()  # the second trial, not refused
    other.succeeded(permit)
    assert breaker.state is ec.BreakerState.CLOSED
    # The stream ends much later, broken: metrics and spans hear of it, the breaker
    # (already closed by its verdict) does not.
    verdict.finished(S.UNAVAILABLE, None)
    assert breaker.state is ec.BreakerState.CLOSED


def test_an_unserved_stream_keeps_its_trial_until_it_ends() -> None:
    res, breaker, _ = _half_open()
    watch = res.plan(METHOD, None, retries=False, default_timeout=False)
    verdict = StreamVerdict(watch, watch.start_attempt()[0])
    settled: list[bool] = []
    verdict.on_settle = lambda: settled.append(True)
    other = res.plan(METHOD, None)
    permit, _ = other.start_attempt()
    with pytest.raises(CircuitOpenError):
        res.plan(METHOD, None).start_attempt()  # both trials are out
    other.succeeded(permit)
    verdict.finished(S.UNAVAILABLE, None)  # refused before it was ever served
    assert settled == [True]
    assert breaker.state is ec.BreakerState.OPEN
