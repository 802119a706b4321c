"""The probe port (``--health-port``): ``grpc.health.v1.Health`` alone, on a
gRPC server of its own.

grpcio queues calls per method, first come first served across connections, so
on the main port a flood of health checks makes a well-behaved prober's checks
wait behind it. On a port of their own they do not: probes are its only
callers. It answers from the main port's :class:`HealthServicer` instance, so
both ports report the same statuses (NOT_SERVING while draining included).

It binds the main port's host, with the main port's TLS (or none), and
``SO_REUSEPORT`` under ``--workers`` exactly as the main port does.
"""

from __future__ import annotations

from typing import Final

import grpc
from grpc_health.v1 import health, health_pb2_grpc

from eventwire.config import ServerConfig
from eventwire.frontends.grpc.server import grpc_options, server_credentials
from eventwire.security.tls import ServerTls

PROBE_LIMITS: Final = {
    # Probers hold a connection or two each and send one check at a time.
    "grpc.max_concurrent_streams": 10,
    "grpc.max_allowed_incoming_connections": 16,
    "grpc.server.max_pending_requests": 100,
    "grpc.server.max_pending_requests_hard_limit": 100,
    "grpc.max_receive_message_length": 4096,
}
"""What the probe port allows: enough for a few probers, little for anyone else."""


def probe_address(config: ServerConfig) -> str:
    """The main gRPC address's host with ``--health-port``."""
    return f"{config.address.rpartition(':')[0]}:{config.health_port}"


def build_probe_server(
    config: ServerConfig, health_servicer: health.aio.HealthServicer, tls: ServerTls | None
) -> tuple[grpc.aio.Server | None, int]:
    """The probe server with its port bound, not yet started; ``(None, 0)`` when off."""
    if not config.health_port:
        return None, 0
    options = dict(grpc_options(config))
    options.update(PROBE_LIMITS)
    server = grpc.aio.server(options=list(options.items()))
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    address = probe_address(config)
    try:
        if tls is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, server_credentials(tls))
    except RuntimeError as exc:
        raise RuntimeError(f"cannot listen on {address} (--health-port): {exc}") from exc
    return server, port
