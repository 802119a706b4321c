"""Fuzzing over the wire: random field values and random bytes on every method.

The server is a real ``eventwire serve`` process with authentication on. Every
reply must carry a status, never UNKNOWN or INTERNAL (nor a timeout or an
unreachable server, which would mean a hang or a crash), and at the end the
process is alive, healthy, and logged no unexpected error.

``make test`` runs about three thousand cases, derandomized so CI is
reproducible. ``EVENTWIRE_FUZZ_EXAMPLES=N`` runs N per property, with fresh
randomness each run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventwire.api import analytics_pb2, telemetry_pb2
from eventwire.testing._process import ServerProcess
from tests.support.security import (
    ACME,
    SENTINEL,
    TOKENS,
    Leaks,
    bearer,
    spawn,
    token_file_text,
)

EXTENDED = int(os.environ.get("EVENTWIRE_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    max_examples=EXTENDED or 600,
    deadline=None,
    database=None,
    derandomize=not EXTENDED,
    suppress_health_check=[HealthCheck.too_slow],
)
FORBIDDEN = {
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNAVAILABLE,
}

UNARY = {
    "/analytics.AnalyticsService/TrackEvent",
    "/analytics.AnalyticsService/TrackEvents",
    "/analytics.AnalyticsService/CountEvents",
    "/telemetry.TelemetryService/ReportAlert",
    "/telemetry.TelemetryService/GetAlert",
    "/grpc.health.v1.Health/Check",
}
CLIENT_STREAM = {"/analytics.AnalyticsService/StreamEvents"}
BIDI_STREAM = {"/analytics.AnalyticsService/IngestEvents"}
METHODS = sorted(UNARY | CLIENT_STREAM | BIDI_STREAM)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory, leaks: Leaks) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("fuzz")
    (root / "tokens").write_text(token_file_text(TOKENS))
    proc = spawn(
        leaks,
        "--store",
        f"sqlite:///{root / 'fuzz.db'}",
        "--sqlite-synchronous",
        "off",  # durability is not under test; speed is welcome
        "--auth-tokens",
        str(root / "tokens"),
        "--grace",
        "1",
        http_address="",
    ).start()
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait()


@pytest.fixture(scope="module")
def channel(fuzzed: ServerProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(fuzzed.address, options=[("grpc.enable_retries", 0)]) as ch:
        yield ch


def call(
    channel: grpc.Channel, method: str, bodies: list[bytes], metadata: Any = None
) -> grpc.StatusCode:
    """Send raw ``bodies`` to ``method``; the status the server answered with."""
    md = bearer(ACME) if metadata is None else metadata
    raw: Any = channel  # raw bytes in and out: no (de)serializers, so no message types
    try:
        if method in UNARY:
            raw.unary_unary(method)(bodies[0], timeout=10, metadata=md)
        elif method in CLIENT_STREAM:
            raw.stream_unary(method)(iter(bodies), timeout=10, metadata=md)
        else:
            for _ in raw.stream_stream(method)(iter(bodies), timeout=10, metadata=md):
                pass
    except grpc.RpcError as err:
        code: grpc.StatusCode = err.code()
        details = str(err.details())
        assert SENTINEL not in details
        assert code not in FORBIDDEN, (method, code, details)
        return code
    return grpc.StatusCode.OK


@FUZZ
@given(method=st.sampled_from(METHODS), body=st.binary(max_size=600))
def test_random_bytes_as_any_request_get_a_status(
    channel: grpc.Channel, method: str, body: bytes
) -> None:
    call(channel, method, [body])


@FUZZ
@given(
    method=st.sampled_from(sorted(CLIENT_STREAM | BIDI_STREAM)),
    bodies=st.lists(st.binary(max_size=200), min_size=0, max_size=4),
)
def test_random_bytes_on_streams_get_a_status(
    channel: grpc.Channel, method: str, bodies: list[bytes]
) -> None:
    call(channel, method, bodies)


# Text without lone surrogates: protobuf refuses to even build those client-side.
text = st.text(st.characters(codec="utf-8"), max_size=300)
int64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
events = st.builds(
    analytics_pb2.TrackEventRequest,
    event_name=text,
    user_id=text,
    timestamp=int64,
    properties=st.dictionaries(text, text, max_size=6),
    event_id=text,
)
batches = st.builds(analytics_pb2.EventBatch, events=st.lists(events, max_size=6), sequence=int64)
requests = st.one_of(
    st.tuples(st.just("/analytics.AnalyticsService/TrackEvent"), events),
    st.tuples(st.just("/analytics.AnalyticsService/TrackEvents"), batches),
    st.tuples(
        st.just("/analytics.AnalyticsService/CountEvents"),
        st.builds(
            analytics_pb2.CountEventsRequest,
            event_name=text,
            user_id=text,
            start=int64,
            end=int64,
        ),
    ),
    st.tuples(
        st.just("/telemetry.TelemetryService/ReportAlert"),
        st.builds(
            telemetry_pb2.AlertRequest,
            device_id=text,
            alert_type=text,
            timestamp=int64,
            idempotency_key=text,
        ),
    ),
    st.tuples(
        st.just("/telemetry.TelemetryService/GetAlert"),
        st.builds(telemetry_pb2.GetAlertRequest, tracking_id=text),
    ),
    st.tuples(
        st.just("/grpc.health.v1.Health/Check"),
        st.builds(health_pb2.HealthCheckRequest, service=text),
    ),
)


@FUZZ
@given(request=requests)
def test_random_field_values_get_a_status(channel: grpc.Channel, request: Any) -> None:
    method, message = request
    call(channel, method, [message.SerializeToString()])


@FUZZ
@given(
    method=st.sampled_from(sorted(CLIENT_STREAM | BIDI_STREAM)),
    messages=st.lists(events, max_size=5),
)
def test_random_streams_of_events_get_a_status(
    channel: grpc.Channel, method: str, messages: list[analytics_pb2.TrackEventRequest]
) -> None:
    if method in BIDI_STREAM:
        bodies = [analytics_pb2.EventBatch(events=messages).SerializeToString()]
    else:
        bodies = [m.SerializeToString() for m in messages]
    call(channel, method, bodies)


# grpcio only sends printable ASCII metadata values.
header = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=200)


@FUZZ
@given(method=st.sampled_from(METHODS), authorization=header)
def test_random_authorization_values_are_refused_cleanly(
    channel: grpc.Channel, method: str, authorization: str
) -> None:
    code = call(
        channel,
        method,
        [b""],
        metadata=(("authorization", authorization), ("authorization-bin", b"\x00\xff")),
    )
    if method.startswith("/grpc.health"):
        assert code == grpc.StatusCode.OK
    else:
        assert code == grpc.StatusCode.UNAUTHENTICATED


def test_zz_the_fuzzed_server_is_alive_healthy_and_logged_no_unexpected_error(
    fuzzed: ServerProcess, channel: grpc.Channel, tmp_path: Path
) -> None:
    assert fuzzed._require().poll() is None
    check = channel.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    assert check(health_pb2.HealthCheckRequest(), timeout=5).status == 1  # SERVING
    errors = [line for line in fuzzed.logs if line.get("level") in {"error", "critical"}]
    assert not errors, errors[:3]
