"""Every limit flag reaches grpcio (rapid-reset mitigations too); the token bucket's maths."""

from __future__ import annotations

import dataclasses
import math

import grpc
import pytest

from eventwire._errors import Overloaded
from eventwire.config import ServerConfig
from eventwire.frontends.grpc.server import grpc_options
from eventwire.security.limits import RateLimiter


def test_grpcio_has_the_http2_rapid_reset_mitigations() -> None:
    # CVE-2023-44487: grpcio 1.57.1/1.58.1/1.59.x and later bound reset streams;
    # 1.60 is the first release line built with them from the start.
    major, minor = (int(part) for part in grpc.__version__.split(".")[:2])
    assert (major, minor) >= (1, 60), grpc.__version__


def test_every_limit_flag_reaches_grpcio() -> None:
    config = ServerConfig(
        max_concurrent_streams=7,
        max_connection_age=60,
        max_connection_age_grace=5,
        max_connection_idle=30,
        max_metadata_bytes=4096,
        handshake_timeout=3,
        max_connections=50,
        min_client_ping_interval=5,
    )
    options = dict(grpc_options(config))
    assert options["grpc.max_concurrent_streams"] == 7
    assert options["grpc.max_connection_age_ms"] == 60_000
    assert options["grpc.max_connection_age_grace_ms"] == 5_000
    assert options["grpc.max_connection_idle_ms"] == 30_000
    assert options["grpc.max_metadata_size"] == options["grpc.absolute_max_metadata_size"] == 4096
    assert options["grpc.server_handshake_timeout_ms"] == 3_000
    assert options["grpc.max_allowed_incoming_connections"] == 50
    # A client pinging every 10 s (a common Go setting) is within the default.
    assert options["grpc.http2.min_ping_interval_without_data_ms"] <= 10_000
    assert ServerConfig().min_client_ping_interval <= 10
    off = dict(grpc_options(dataclasses.replace(config, max_connection_age=0, max_connections=0)))
    assert "grpc.max_connection_age_ms" not in off
    assert "grpc.max_allowed_incoming_connections" not in off


def test_token_bucket_refills_admits_big_requests_into_debt_and_says_when() -> None:
    now = [0.0]
    limiter = RateLimiter(10, burst=5, clock=lambda: now[0])
    for _ in range(5):
        limiter.charge("a", 1)
    with pytest.raises(Overloaded) as info:
        limiter.charge("a", 1)
    assert info.value.retry_after_ms == 100  # one token at 10/s
    limiter.charge("b", 5)  # tenants have their own buckets
    now[0] = 0.5  # refilled to the full 5
    limiter.charge("a", 50)  # bigger than the bucket: admitted when full, into debt
    with pytest.raises(Overloaded) as info:
        limiter.charge("a", 1)
    assert info.value.retry_after_ms == math.ceil((1 + 45) / 10 * 1000)
    now[0] = 5.1
    limiter.charge("a", 1)
