"""The gRPC server of one process: options, credentials, endpoints and services.

:func:`build_grpc_server` assembles it from the configuration and the layers
below (the composition root in :mod:`eventwire.runtime.server` owns its life).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import grpc
from grpc_health.v1 import health, health_pb2_grpc
from opentelemetry.trace import Tracer

from eventwire._rpc import SERVICE_NAMES
from eventwire.api import (
    analytics_pb2_grpc,
    destinations_pb2_grpc,
    plans_pb2_grpc,
    telemetry_pb2_grpc,
)
from eventwire.config import ServerConfig
from eventwire.destinations.ops import DestinationOps
from eventwire.frontends.grpc import reflection
from eventwire.frontends.grpc.destinations import DestinationsServicer
from eventwire.frontends.grpc.endpoints import Gate
from eventwire.frontends.grpc.plans import PlansServicer
from eventwire.frontends.grpc.servicers import AnalyticsServicer, TelemetryServicer
from eventwire.ingest.plans_service import PlansService
from eventwire.ingest.service import IngestService
from eventwire.observability.metrics import ServerMetrics
from eventwire.reads.service import ReadService
from eventwire.security.auth import Authenticator
from eventwire.security.limits import ByteBudget, RateLimiter
from eventwire.security.tls import ServerTls

_INT32_MAX: Final = 2**31 - 1


def grpc_options(config: ServerConfig) -> list[tuple[str, int]]:
    options = [
        # Two servers must never silently share a port; --workers opts in explicitly.
        ("grpc.so_reuseport", 1 if config.workers > 1 else 0),
        ("grpc.max_receive_message_length", config.max_receive_message_bytes),
        ("grpc.max_send_message_length", config.max_receive_message_bytes),
        # Find and drop dead peers (half-open TCP) instead of holding their streams.
        ("grpc.keepalive_time_ms", int(config.keepalive_time * 1000)),
        ("grpc.keepalive_timeout_ms", int(config.keepalive_timeout * 1000)),
        ("grpc.keepalive_permit_without_calls", 1),
        # grpcio's default refuses client pings more often than every 5 minutes
        # (too_many_pings); clients commonly ping every 10-30 s.
        (
            "grpc.http2.min_ping_interval_without_data_ms",
            int(config.min_client_ping_interval * 1000),
        ),
        (
            "grpc.http2.min_recv_ping_interval_without_data_ms",
            int(config.min_client_ping_interval * 1000),
        ),
        ("grpc.http2.max_ping_strikes", 2),
        # Bounds what one connection can make the server hold at once.
        ("grpc.max_concurrent_streams", config.max_concurrent_streams),
        # Calls the server has not yet taken wait in one queue per method, first
        # come first served across connections. grpcio ends a random share of
        # new ones CANCELLED once 1,000 wait, and every one from 3,000 on
        # (src/core/server/server.cc, pending_backlog_protector_): a pipelining
        # client then fails everyone's calls at random, and each refusal frees
        # its stream for the next request at once. Above what
        # --max-concurrent-streams lets 20 connections queue (and some), nothing is
        # refused: a flood is paced by the server's own answers instead.
        ("grpc.server.max_pending_requests", config.max_pending_rpcs),
        ("grpc.server.max_pending_requests_hard_limit", config.max_pending_rpcs),
        # Soft and hard limit alike: grpcio refuses a random share of requests
        # between the two, which would make the limit flaky to hit.
        ("grpc.max_metadata_size", config.max_metadata_bytes),
        ("grpc.absolute_max_metadata_size", config.max_metadata_bytes),
    ]
    # grpcio's own defaults (no age or idle limit, 120 s handshakes, unlimited
    # connections) apply where a flag is 0.
    for name, seconds in (
        ("grpc.max_connection_age_ms", config.max_connection_age),
        ("grpc.max_connection_age_grace_ms", config.max_connection_age_grace),
        ("grpc.max_connection_idle_ms", config.max_connection_idle),
        ("grpc.server_handshake_timeout_ms", config.handshake_timeout),
    ):
        if seconds:
            options.append((name, min(_INT32_MAX, max(1, int(seconds * 1000)))))
    if config.max_connections:
        options.append(("grpc.max_allowed_incoming_connections", config.max_connections))
    return options


def server_credentials(tls: ServerTls) -> grpc.ServerCredentials:
    return grpc.ssl_server_credentials(
        [(tls.key, tls.cert)],
        root_certificates=tls.client_ca,
        require_client_auth=tls.client_ca is not None,
    )


def build_grpc_server(
    config: ServerConfig,
    service: IngestService,
    reads: ReadService,
    *,
    health_servicer: health.aio.HealthServicer,
    metrics: ServerMetrics,
    tracer: Tracer | None,
    auth: Authenticator | None,
    limiter: RateLimiter | None,
    tls: ServerTls | None,
    budget: ByteBudget | None = None,
    destinations: DestinationOps | None = None,
    plans: PlansService | None = None,
) -> tuple[grpc.aio.Server, int]:
    """The server with every service registered and its port bound, not yet started.

    No interceptors: every method is wrapped once, here, by the :class:`Gate`
    (see :mod:`eventwire.frontends.grpc.endpoints`).
    """
    server = grpc.aio.server(
        options=grpc_options(config),
        maximum_concurrent_rpcs=config.max_concurrent_rpcs or None,
    )
    gate = Gate(metrics, tracer=tracer, auth=auth, limiter=limiter, budget=budget)
    # The generated functions only call the two registration methods _Registrar has.
    ours: Any = _Registrar()
    analytics_pb2_grpc.add_AnalyticsServiceServicer_to_server(
        AnalyticsServicer(
            service,
            reads,
            max_stream_events=config.max_stream_events,
            max_stream_bytes=config.max_stream_bytes,
            budget=budget,
        ),
        ours,
    )
    telemetry_pb2_grpc.add_TelemetryServiceServicer_to_server(
        TelemetryServicer(service, reads), ours
    )
    if destinations is not None:
        destinations_pb2_grpc.add_DestinationsServiceServicer_to_server(
            DestinationsServicer(destinations), ours
        )
    if plans is not None:
        plans_pb2_grpc.add_PlansServiceServicer_to_server(PlansServicer(plans), ours)
    for name, handlers in ours.services.items():
        _register(server, name, gate.ours(name, handlers))
    standard: Any = _Registrar()
    # Health stays open for probes; reflection needs a valid token when auth is on.
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, standard)
    if config.reflection:
        reflection.enable(standard, (*SERVICE_NAMES, health.SERVICE_NAME))
    for name, handlers in standard.services.items():
        protected = name != health.SERVICE_NAME and auth is not None
        _register(server, name, gate.theirs(name, handlers, authenticate=protected))
    if tls is None:
        port = server.add_insecure_port(config.address)
    else:
        port = server.add_secure_port(config.address, server_credentials(tls))
    return server, port


class _Registrar:
    """Stands in for the server in generated ``add_*_to_server`` calls, to collect
    each service's method handlers so they can be wrapped before grpcio sees them."""

    def __init__(self) -> None:
        self.services: dict[str, dict[str, grpc.RpcMethodHandler[Any, Any]]] = {}

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        """The generated code registers every method twice; the named form is kept."""

    def add_registered_method_handlers(
        self, service: str, handlers: Mapping[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> None:
        self.services.setdefault(service, {}).update(handlers)


def _register(
    server: grpc.aio.Server, service: str, handlers: dict[str, grpc.RpcMethodHandler[Any, Any]]
) -> None:
    # Both forms, as generated code does: registered methods are looked up
    # without the generic handlers' per-call walk.
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
    server.add_registered_method_handlers(service, handlers)
