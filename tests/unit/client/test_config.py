"""ClientConfig is validated, frozen, varied with replace, and is what the keywords build;
grpcio errors become the exception tree in one place, rpc_errors."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Generator
from typing import Any

import grpc
import pytest
from grpc.aio import AioRpcError, Metadata

import eventwire.client as ec
from eventwire.client import CircuitBreaker, ClientConfig, ClientMetrics, RetryPolicy
from eventwire.client._config import BARE, configure
from eventwire.client._core import Resilience
from eventwire.client._exceptions import rpc_errors
from eventwire.client.tracker.config import STREAM_BREAKER, STREAM_CLIENT, stream_client

S = grpc.StatusCode
TOKEN = "s3cret"  # noqa: S105 - a test token, checked not to leak
OTHER = "0ther"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"timeout": 0}, ValueError, "timeout"),
        ({"timeout": float("nan")}, ValueError, "timeout"),
        ({"timeout": float("inf")}, ValueError, "timeout"),
        ({"retry": 3}, TypeError, "retry must be RetryPolicy"),
        ({"breaker": RetryPolicy()}, TypeError, "breaker"),
        ({"throttle": "on"}, TypeError, "throttle"),
        ({"hedging": True}, TypeError, "hedging"),
        ({"on_retry": "print"}, TypeError, "on_retry"),
        ({"credentials": "tls"}, TypeError, "credentials"),
        ({"rng": 42}, TypeError, "rng"),
        ({"metrics": object()}, TypeError, "metrics"),
        ({"tracer_provider": object()}, TypeError, "tracer_provider"),
        ({"token": "two words"}, ValueError, "token"),
    ],
)
def test_config_refuses_nonsense(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        ClientConfig(**kwargs)


def test_config_is_frozen_replace_revalidates_and_the_token_stays_secret() -> None:
    config = ClientConfig(token=TOKEN, options=[("grpc.max_send_message_length", 1 << 20)])
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.timeout = 1  # type: ignore[misc]
    assert config.options == (("grpc.max_send_message_length", 1 << 20),)
    assert config.metadata == (("authorization", f"Bearer {TOKEN}"),)
    assert TOKEN not in repr(config)
    assert dataclasses.replace(config, timeout=1.5).timeout == 1.5
    with pytest.raises(ValueError, match="timeout"):
        dataclasses.replace(config, timeout=-1)
    assert ClientConfig(token="").token is None
    assert ClientConfig().metadata is None
    hash(ClientConfig())


def test_keywords_are_laid_over_the_config_in_one_place() -> None:
    base = ClientConfig(timeout=3, token=TOKEN)
    assert configure(None, {}) == ClientConfig()
    assert configure(base, {}) is base
    over = configure(base, {"timeout": 5, "retry": None})
    assert (over.timeout, over.retry, over.token) == (5, None, TOKEN)
    assert configure(None, {}, base=BARE) is BARE
    with pytest.raises(TypeError, match="timout"):
        configure(None, {"timout": 5})
    with pytest.raises(TypeError, match="ClientConfig"):
        configure({"timeout": 5}, {})  # type: ignore[arg-type]


def test_resilience_is_built_from_the_config() -> None:
    shared = CircuitBreaker(name="shared")
    metrics = ClientMetrics()
    jitter = random.Random(7)  # noqa: S311 - jitter, not cryptography
    config = ClientConfig(breaker=shared, metrics=metrics, rng=jitter, token=TOKEN)
    res = Resilience("t:1", config, default_timeout=0.2)
    assert res.breaker is shared
    assert res.timeout == 0.2  # None in the config: the client's default
    assert Resilience("t:1", dataclasses.replace(config, timeout=4)).timeout == 4
    assert isinstance(res.throttle, ec.RetryThrottle)
    own = Resilience("t:1", ClientConfig()).breaker
    assert own is not None
    assert own.name == "t:1"  # a policy gets a breaker per client, named by target
    # Every call carries the token, whatever metadata it has of its own.
    assert res.plan("/s/M", None).metadata((("x", "1"),)) == (
        ("x", "1"),
        ("authorization", f"Bearer {TOKEN}"),
    )
    # Two clients sharing one breaker and one ClientMetrics count each transition once.
    Resilience("t:1", config)
    shared.record(shared.acquire(), None)
    for _ in range(9):
        shared.record(shared.acquire(), S.UNAVAILABLE)
    assert shared.state is ec.BreakerState.OPEN
    transitions = metrics.registry.get_sample_value(
        "eventwire_client_breaker_transitions_total", {"breaker": "shared", "state": "open"}
    )
    assert transitions == 1


def test_the_tracker_stream_config() -> None:
    assert stream_client({}) is STREAM_CLIENT
    assert STREAM_CLIENT.breaker is STREAM_BREAKER
    assert S.RESOURCE_EXHAUSTED not in STREAM_BREAKER.failure_codes
    chosen = ClientConfig(token=TOKEN)
    assert stream_client({"client": chosen}) is chosen
    laid = stream_client({"client": chosen, "token": OTHER, "channel_options": [("k", 1)]})
    assert (laid.token, laid.options) == (OTHER, (("k", 1),))
    with pytest.raises(TypeError, match="ClientConfig"):
        stream_client({"client": "x"})  # type: ignore[typeddict-item]
    with pytest.raises(TypeError, match="on_dorp"):
        stream_client({"on_dorp": print})  # type: ignore[typeddict-unknown-key]


def raw(code: grpc.StatusCode, message: str = "m") -> AioRpcError:
    return AioRpcError(code, Metadata(), Metadata(), message)


class Plan:
    attempts = 3


def test_rpc_errors_maps_once_with_the_attempt_count() -> None:
    with pytest.raises(ec.UnavailableError) as info, rpc_errors(Plan()):
        raise raw(S.UNAVAILABLE, "down")
    assert info.value.attempts == 3
    assert isinstance(info.value.__cause__, AioRpcError)
    already = ec.NotFoundError(S.NOT_FOUND, "gone")
    with pytest.raises(ec.NotFoundError) as again, rpc_errors():
        raise already
    assert again.value is already
    with pytest.raises(KeyError), rpc_errors():
        raise KeyError("not an RPC error: untouched")


def test_rpc_errors_maps_what_a_generator_raises_and_lets_it_close() -> None:
    closed: list[bool] = []

    def acks() -> Generator[int]:
        try:
            with rpc_errors():
                yield 1
                raise raw(S.PERMISSION_DENIED)
        finally:
            closed.append(True)

    stream = acks()
    assert next(stream) == 1
    with pytest.raises(ec.PermissionDeniedError):
        next(stream)
    early = acks()
    next(early)
    early.close()  # GeneratorExit passes through untouched
    assert closed == [True, True]
