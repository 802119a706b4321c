"""The I/O-free parts: policies, backoff maths, breaker and throttle state machines, plans."""

from __future__ import annotations

import dataclasses
import pickle
from typing import Any

import grpc
import pytest
from grpc.aio import Metadata
from hypothesis import given
from hypothesis import strategies as st

import eventwire.client as ec
from eventwire.client import (
    BreakerState,
    CircuitBreaker,
    CircuitBreakerPolicy,
    CircuitOpenError,
    Deadline,
    HedgingPolicy,
    RetryPolicy,
    RetryThrottle,
    ThrottlePolicy,
    Transition,
    backoff,
    backoff_ceiling,
)
from eventwire.client._config import BARE
from eventwire.client._core import Resilience
from eventwire.client._exceptions import parse_pushback

S = grpc.StatusCode


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def state(breaker: CircuitBreaker) -> BreakerState:
    # A function call, so the type checker does not narrow the property across steps.
    return breaker.state


# --- policies -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"initial_backoff": 0}, "initial_backoff"),
        ({"initial_backoff": float("nan")}, "initial_backoff"),
        ({"max_backoff": 0.001}, "max_backoff"),
        ({"multiplier": 0.5}, "multiplier"),
        ({"jitter": "wild"}, "jitter"),
        ({"retryable_codes": {S.INVALID_ARGUMENT}}, "INVALID_ARGUMENT"),
        ({"retryable_codes": {S.OK}}, "OK"),
        ({"total_timeout": -1.0}, "total_timeout"),
    ],
)
def test_retry_policy_rejects_nonsense(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RetryPolicy(**kwargs)


def test_policies_are_frozen_and_replace_revalidates() -> None:
    policy = RetryPolicy()
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.max_attempts = 9  # type: ignore[misc]
    assert dataclasses.replace(policy, max_attempts=2).max_attempts == 2
    with pytest.raises(ValueError, match="max_attempts"):
        dataclasses.replace(policy, max_attempts=99)
    # Codes given as any iterable are frozen, so policies stay hashable.
    codes: Any = [S.UNAVAILABLE]
    assert isinstance(RetryPolicy(retryable_codes=codes).retryable_codes, frozenset)
    hash(RetryPolicy())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"failure_codes": {S.INVALID_ARGUMENT, S.UNAVAILABLE}}, "INVALID_ARGUMENT"),
        ({"window": "sliding"}, "window"),
        ({"window_size": 2.5}, "whole"),
        ({"minimum_calls": 30}, "minimum_calls"),
        ({"failure_rate_threshold": 0}, "failure_rate"),
        ({"slow_call_duration": -1}, "slow_call_duration"),
        ({"open_duration": 0}, "open_duration"),
        ({"half_open_calls": 0}, "half_open_calls"),
    ],
)
def test_breaker_policy_rejects_nonsense(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CircuitBreakerPolicy(**kwargs)


def test_other_policies_validate() -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        ThrottlePolicy(max_tokens=0)
    with pytest.raises(ValueError, match="token_ratio"):
        ThrottlePolicy(token_ratio=2)
    with pytest.raises(ValueError, match="max_attempts"):
        HedgingPolicy(max_attempts=1)
    with pytest.raises(ValueError, match="delay"):
        HedgingPolicy(delay=-0.1)


def test_documented_defaults() -> None:
    assert ec.DEFAULT_ANALYTICS_TIMEOUT == 0.2
    assert ec.DEFAULT_TELEMETRY_TIMEOUT == 2.0
    assert RetryPolicy().max_attempts == 4
    breaker = CircuitBreakerPolicy()
    assert (breaker.window, breaker.window_size, breaker.minimum_calls) == ("count", 20, 10)
    assert breaker.failure_rate_threshold == 0.5
    assert S.INVALID_ARGUMENT not in breaker.failure_codes


# --- backoff --------------------------------------------------------------------------------

EXACT = RetryPolicy(initial_backoff=0.1, max_backoff=1.0, multiplier=2.0, jitter="none")


@pytest.mark.parametrize(
    ("retry", "expected"), [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (60, 1.0)]
)
def test_backoff_without_jitter_is_capped_exponential(retry: int, expected: float) -> None:
    assert backoff(EXACT, retry, 0.5) == pytest.approx(expected)
    assert backoff_ceiling(EXACT, retry) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("jitter", "retry", "rand", "previous", "expected"),
    [
        ("full", 1, 0.0, None, 0.0),
        ("full", 3, 0.5, None, 0.2),
        ("full", 9, 0.25, None, 0.25),
        ("equal", 1, 0.0, None, 0.05),
        ("equal", 3, 0.5, None, 0.3),
        ("decorrelated", 1, 0.0, None, 0.1),
        ("decorrelated", 1, 0.5, None, 0.2),  # uniform(0.1, 0.3)
        ("decorrelated", 2, 0.5, 0.2, 0.35),  # uniform(0.1, 0.6)
        ("decorrelated", 5, 0.99, 0.9, 1.0),  # capped
    ],
)
def test_backoff_jitter_exact(
    jitter: str, retry: int, rand: float, previous: float | None, expected: float
) -> None:
    policy = dataclasses.replace(EXACT, jitter=jitter)  # type: ignore[arg-type]
    assert backoff(policy, retry, rand, previous) == pytest.approx(expected)


@given(
    jitter=st.sampled_from(["full", "equal", "decorrelated", "none"]),
    retry=st.integers(1, 200),
    rand=st.floats(0, 1, exclude_max=True),
    previous=st.none() | st.floats(0, 10),
)
def test_backoff_always_within_bounds(
    jitter: str, retry: int, rand: float, previous: float | None
) -> None:
    policy = dataclasses.replace(EXACT, jitter=jitter)  # type: ignore[arg-type]
    delay = backoff(policy, retry, rand, previous)
    assert 0.0 <= delay <= policy.max_backoff
    if jitter in ("full", "equal", "none"):
        assert delay <= backoff_ceiling(policy, retry)


def test_backoff_rejects_bad_draws() -> None:
    with pytest.raises(ValueError, match="rand"):
        backoff(EXACT, 1, 1.0)
    with pytest.raises(ValueError, match="retry"):
        backoff_ceiling(EXACT, 0)


def test_testing_switch_nests_and_restores() -> None:
    assert not ec.is_testing()
    with ec.no_backoff():
        assert ec.is_testing()
    assert not ec.is_testing()
    ec.set_testing(True)
    try:
        assert ec.is_testing()
    finally:
        ec.set_testing(False)


# --- pushback and errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        (None, None),
        ((), None),
        ((("other", "1"),), None),
        ((("grpc-retry-pushback-ms", "250"),), 250),
        ((("grpc-retry-pushback-ms", "0"),), 0),
        ((("grpc-retry-pushback-ms", "-1"),), -1),
        ((("grpc-retry-pushback-ms", "soon"),), -1),
    ],
)
def test_parse_pushback(metadata: Any, expected: int | None) -> None:
    assert parse_pushback(metadata) == expected


def test_error_tree_maps_codes_and_stays_a_grpc_error() -> None:
    raw = grpc.aio.AioRpcError(
        S.RESOURCE_EXHAUSTED,
        Metadata(),
        Metadata(("grpc-retry-pushback-ms", "40")),
        "busy",
    )
    err = ec.map_rpc_error(raw, attempts=3)
    assert isinstance(err, ec.ResourceExhaustedError)
    assert isinstance(err, grpc.RpcError)
    assert isinstance(err, ec.EventwireError)
    assert err.code() is S.RESOURCE_EXHAUSTED
    assert err.details() == "busy"
    assert err.pushback_ms == 40
    assert err.attempts == 3
    assert ec.map_rpc_error(err) is err
    unknown = ec.map_rpc_error(grpc.aio.AioRpcError(S.DATA_LOSS, Metadata(), Metadata(), "x"))
    assert type(unknown) is ec.InternalError
    assert issubclass(CircuitOpenError, ec.UnavailableError)
    again = pickle.loads(pickle.dumps(err))  # noqa: S301 - our own object, round-tripped
    assert (type(again), again.code(), again.message) == (type(err), err.code(), "busy")


def test_circuit_open_error_says_when() -> None:
    err = CircuitOpenError("db:1", half_open_at=105.0, now=100.0)
    assert err.retry_after == 5.0
    assert err.code() is S.UNAVAILABLE
    assert err.attempts == 0
    assert "5.000s" in str(err)


# --- breaker state machine --------------------------------------------------------------------

SMALL = CircuitBreakerPolicy(window_size=4, minimum_calls=4, open_duration=10, half_open_calls=2)


def test_breaker_walks_every_transition_on_a_fake_clock() -> None:
    clock = FakeClock()
    seen: list[Transition] = []
    breaker = CircuitBreaker(SMALL, name="t", clock=clock, on_transition=seen.append)
    for code in (None, S.UNAVAILABLE, None, S.UNAVAILABLE):  # 50 % of 4: opens
        breaker.record(breaker.acquire(), code)
    assert state(breaker) is BreakerState.OPEN
    assert seen[-1].failure_rate == 0.5
    with pytest.raises(CircuitOpenError) as info:
        breaker.acquire()
    assert info.value.retry_after == 10.0
    assert info.value.half_open_at == clock.now + 10
    clock.advance(9.999)
    with pytest.raises(CircuitOpenError):
        breaker.acquire()
    clock.advance(0.001)
    assert state(breaker) is BreakerState.HALF_OPEN
    first, second = breaker.acquire(), breaker.acquire()
    with pytest.raises(CircuitOpenError):
        breaker.acquire()  # only half_open_calls trials at once
    breaker.record(first, None)
    breaker.record(second, None)
    assert state(breaker) is BreakerState.CLOSED
    # Re-open from half-open on a failed trial.
    for _ in range(4):
        breaker.record(breaker.acquire(), S.DEADLINE_EXCEEDED)
    clock.advance(10)
    trial1, trial2 = breaker.acquire(), breaker.acquire()
    breaker.record(trial1, S.UNAVAILABLE)
    breaker.record(trial2, None)
    assert state(breaker) is BreakerState.OPEN
    assert [(t.before, t.after) for t in seen] == [
        (BreakerState.CLOSED, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED),
        (BreakerState.CLOSED, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.OPEN),
    ]


def test_breaker_needs_minimum_calls_and_ignores_caller_errors() -> None:
    breaker = CircuitBreaker(SMALL, clock=FakeClock())
    for _ in range(3):
        breaker.record(breaker.acquire(), S.UNAVAILABLE)
    assert state(breaker) is BreakerState.CLOSED  # 3 < minimum_calls
    breaker = CircuitBreaker(SMALL, clock=FakeClock())
    for _ in range(20):
        breaker.record(breaker.acquire(), S.INVALID_ARGUMENT)
    assert state(breaker) is BreakerState.CLOSED  # the backend answered: not its fault


def test_breaker_time_window_forgets_old_calls() -> None:
    clock = FakeClock()
    policy = CircuitBreakerPolicy(window="time", window_size=1.0, minimum_calls=3)
    breaker = CircuitBreaker(policy, clock=clock)
    for _ in range(2):
        breaker.record(breaker.acquire(), S.UNAVAILABLE)
    clock.advance(1.5)  # those two fall out of the window
    breaker.record(breaker.acquire(), S.UNAVAILABLE)
    breaker.record(breaker.acquire(), None)
    assert state(breaker) is BreakerState.CLOSED
    breaker.record(breaker.acquire(), S.UNAVAILABLE)  # 2 of 3 within 1 s
    assert state(breaker) is BreakerState.OPEN


def test_breaker_slow_calls_open_it() -> None:
    clock = FakeClock()
    policy = dataclasses.replace(SMALL, slow_call_duration=0.5, slow_call_rate_threshold=0.75)
    breaker = CircuitBreaker(policy, clock=clock)
    for _ in range(3):
        permit = breaker.acquire()
        clock.advance(0.6)
        breaker.record(permit, None)
    breaker.record(breaker.acquire(), None)
    assert state(breaker) is BreakerState.OPEN


def test_breaker_ignores_stale_verdicts_and_takes_back_cancelled_trials() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(SMALL, clock=clock)
    stale = breaker.acquire()
    for _ in range(4):
        breaker.record(breaker.acquire(), S.UNAVAILABLE)
    clock.advance(10)
    trial = breaker.acquire()
    breaker.record(stale, None)  # started while closed: no say in half-open
    assert state(breaker) is BreakerState.HALF_OPEN
    breaker.release(trial)  # cancelled by its caller: the slot is free again
    breaker.acquire()
    breaker.acquire()
    with pytest.raises(CircuitOpenError):
        breaker.acquire()


def test_a_broken_hook_does_not_break_calls(caplog: pytest.LogCaptureFixture) -> None:
    def boom(_: Transition) -> None:
        raise RuntimeError("hook bug")

    breaker = CircuitBreaker(SMALL, clock=FakeClock(), on_transition=boom)
    for _ in range(4):
        breaker.record(breaker.acquire(), S.UNAVAILABLE)
    assert state(breaker) is BreakerState.OPEN
    assert "hook" in caplog.text


# --- throttle -------------------------------------------------------------------------------


def test_throttle_follows_a6() -> None:
    bucket = RetryThrottle(ThrottlePolicy(max_tokens=4, token_ratio=0.5))
    assert bucket.allows_retry()
    bucket.on_failure()
    assert bucket.allows_retry()  # 3 > 2
    bucket.on_failure()
    assert not bucket.allows_retry()  # 2 is not > 2
    bucket.on_success()
    assert bucket.allows_retry()  # 2.5
    for _ in range(10):
        bucket.on_failure()
    assert bucket.tokens == 0
    for _ in range(100):
        bucket.on_success()
    assert bucket.tokens == 4


# --- plans and deadlines --------------------------------------------------------------------


def _unavailable(pushback: str | None = None) -> Metadata:
    return Metadata(("grpc-retry-pushback-ms", pushback)) if pushback else Metadata()


def test_plan_sleeps_only_if_the_sleep_fits_the_deadline() -> None:
    clock = FakeClock()
    policy = RetryPolicy(initial_backoff=0.1, max_backoff=1, jitter="none", max_attempts=5)
    res = Resilience("t", dataclasses.replace(BARE, timeout=0.35, retry=policy), clock=clock)
    plan = res.plan("/s/M", None)
    permit, timeout = plan.start_attempt()
    assert timeout == pytest.approx(0.35)
    assert plan.failed(permit, S.UNAVAILABLE, None) == pytest.approx(0.1)
    clock.advance(0.1)
    permit, timeout = plan.start_attempt()
    assert timeout == pytest.approx(0.25)
    # The next sleep (0.2) would end at 0.30 of 0.35 left: allowed.
    assert plan.failed(permit, S.UNAVAILABLE, None) == pytest.approx(0.2)
    clock.advance(0.2)
    permit, timeout = plan.start_attempt()
    clock.advance(0.01)
    # 0.4 s of sleep cannot fit into the 0.04 s left: give up now.
    assert plan.failed(permit, S.UNAVAILABLE, None) is None
    assert plan.attempts == 3


def test_plan_retries_only_retryable_idempotent_calls_and_honours_pushback() -> None:
    res = Resilience("t", ec.ClientConfig(breaker=None), idempotent={"/s/Read"})
    write = res.plan("/s/Write", None)
    assert write.failed(write.start_attempt()[0], S.UNAVAILABLE, None) is None
    read = res.plan("/s/Read", None)
    assert read.failed(read.start_attempt()[0], S.INVALID_ARGUMENT, None) is None
    read = res.plan("/s/Read", None)
    delay = read.failed(read.start_attempt()[0], S.RESOURCE_EXHAUSTED, _unavailable("1500"))
    assert delay == 1.5
    read = res.plan("/s/Read", None)
    assert read.failed(read.start_attempt()[0], S.UNAVAILABLE, _unavailable("-1")) is None


def test_plan_takes_the_earliest_deadline() -> None:
    clock = FakeClock()
    res = Resilience(
        "t", dataclasses.replace(BARE, timeout=5, retry=RetryPolicy(total_timeout=2)), clock=clock
    )
    assert res.plan("/s/M", None).deadline.at == clock.now + 2  # type: ignore[union-attr]
    assert res.plan("/s/M", 1).deadline.at == clock.now + 1  # type: ignore[union-attr]
    with ec.deadline_from(0.5):
        plan = res.plan("/s/M", None)
        assert plan.deadline is not None
        assert plan.deadline.remaining() <= 0.5
    clock.advance(5)
    plan = res.plan("/s/M", None)
    clock.advance(3)
    with pytest.raises(ec.DeadlineExceededError):
        plan.start_attempt()


def test_deadline_helpers() -> None:
    clock = FakeClock()
    deadline = Deadline.after(2, clock)
    assert deadline.remaining() == 2
    clock.advance(3)
    assert deadline.expired
    assert deadline.remaining() == 0

    class Ctx:
        def __init__(self, remaining: float | None) -> None:
            self.remaining = remaining

        def time_remaining(self) -> float | None:
            return self.remaining

    assert ec.remaining_budget(Ctx(0.3), default=1.0) == 0.3
    assert ec.remaining_budget(Ctx(None), default=1.0) == 1.0
    assert ec.remaining_budget(Ctx(5.0), default=1.0) == 1.0
    assert ec.current_deadline() is None
    with ec.deadline_from(Ctx(10.0)) as outer:
        with ec.deadline_from(Ctx(1.0)) as inner:
            assert inner is not None
            assert inner.remaining() <= 1.0
        with ec.deadline_from(Ctx(100.0)) as longer:
            assert longer is outer  # nesting never extends a deadline
        with ec.deadline_from(Ctx(None)):
            assert ec.current_deadline() is outer
    assert ec.current_deadline() is None


def test_a_broken_retry_hook_does_not_change_the_call(caplog: pytest.LogCaptureFixture) -> None:
    def boom(_: ec.RetryEvent) -> None:
        raise RuntimeError("hook bug")

    res = Resilience(
        "t", dataclasses.replace(BARE, retry=RetryPolicy(jitter="none"), on_retry=boom)
    )
    plan = res.plan("/s/M", None)
    assert plan.failed(plan.start_attempt()[0], S.UNAVAILABLE, None) == 0.025
    assert "on_retry hook" in caplog.text
