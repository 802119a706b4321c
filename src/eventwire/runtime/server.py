"""The composition root: builds a running server from one :class:`ServerConfig`.

Shutdown order matters for "a success reply means committed": health turns
NOT_SERVING first (load balancers stop sending), the gRPC server refuses new
RPCs and gives in-flight ones the grace period, the pipeline commits what they
queued, and only then does the store close.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

import grpc
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import make_asgi_app

from eventwire._redact import redact
from eventwire.config import ServerConfig
from eventwire.destinations.ops import DestinationOps
from eventwire.destinations.service import Destinations
from eventwire.frontends.grpc.health import HealthServicer
from eventwire.frontends.grpc.probe import build_probe_server
from eventwire.frontends.grpc.server import build_grpc_server
from eventwire.frontends.http import (
    GatewayApp,
    HttpGateway,
    HttpLimits,
    HttpThread,
    uvicorn_tls_options,
)
from eventwire.ingest.pipeline import IngestPipeline
from eventwire.ingest.plan_state import PlanState
from eventwire.ingest.plans_service import PlansService
from eventwire.ingest.service import IngestService, now_ms
from eventwire.observability.metrics import ServerMetrics
from eventwire.observability.tracing import TRACER_NAME, tracer_provider
from eventwire.reads.limits import ReadLimits
from eventwire.reads.retention import Retention
from eventwire.reads.service import ReadService
from eventwire.runtime.store_watch import LIVENESS, StoreWatch
from eventwire.security.auth import Authenticator
from eventwire.security.limits import ByteBudget, RateLimiter
from eventwire.security.tls import ServerTls
from eventwire.store import Store, open_store

__all__ = ["LIVENESS", "Server"]

log = logging.getLogger("eventwire.server")


class Server:
    """One eventwire server process: gRPC services, health, reflection, pipeline, store."""

    def __init__(
        self,
        config: ServerConfig,
        store: Store | None = None,
        traces: TracerProvider | None = None,
    ) -> None:
        """``traces`` replaces the provider built from ``config.trace_exporter``."""
        self.config = config
        # With --workers the supervisor holds the one-server-per-file lock for all.
        self.store = store or open_store(
            config.store,
            sqlite_synchronous=config.sqlite_synchronous,
            exclusive=config.workers <= 1,
        )
        self.port = 0
        self.http_port = 0
        """The JSON/HTTP gateway's bound port; 0 while it is not started or disabled."""
        self.metrics_port = 0
        """The /metrics listener's bound port; 0 while it is not started or disabled."""
        self.metrics = ServerMetrics()
        # Unreadable TLS files or a bad token file fail here, as a ValueError.
        self._tls = ServerTls.from_config(config)
        self.auth = Authenticator(config.auth_tokens) if config.auth_tokens else None
        self._limiter = (
            RateLimiter(config.rate_limit, config.rate_burst) if config.rate_limit else None
        )
        self.budget = ByteBudget(config.max_inflight_bytes)
        self.metrics.watch_inflight(lambda: self.budget.held)
        self._traces = traces or tracer_provider(config.trace_exporter)
        self._tracer = None if self._traces is None else self._traces.get_tracer(TRACER_NAME)
        self._gateway: HttpGateway | None = None
        self._metrics_listener: HttpGateway | None = None
        self._http_thread = HttpThread() if config.http_thread else None
        self._health = HealthServicer()
        self._store_watch = StoreWatch(
            self.store,
            self._health,
            self.metrics,
            interval=config.store_probe_interval,
            draining=lambda: self._draining,
        )
        self._pipeline = IngestPipeline(
            self.store,
            max_batch=config.max_batch_events,
            max_pending=config.max_pending_events,
            on_store_health=self._store_watch.on_store_health,
            metrics=self.metrics,
            tracer=self._tracer,
            max_delay=config.max_commit_delay,
        )
        self._grpc: grpc.aio.Server | None = None
        self._probe: grpc.aio.Server | None = None
        self.health_port = 0  # --health-port's bound port; 0 while it is off
        self._reads: ReadService | None = None
        # A destination URL that cannot work is a ValueError here, like a bad store URL.
        self.destinations = Destinations.from_config(config, self.store)
        self.destination_ops = DestinationOps(self.destinations)
        self.metrics.watch_destinations(self.destinations.statuses)
        self.retention = Retention(
            self.store,
            {"events": config.retention_ms("events"), "alerts": config.retention_ms("alerts")},
            chunk=config.retention_chunk,
            interval=config.retention_interval,
            floor=self.destinations.floor,
            overrides=config.retention_overrides_destinations,
        )
        # The tracking plan in force, followed in the store (docs/tracking-plans.md).
        self.plans = PlanState(self.store, stats=self.metrics.plans, clock=now_ms)
        self._draining = False
        self._stopped = asyncio.Event()

    @property
    def address(self) -> str:
        host = self.config.address.rpartition(":")[0]
        return f"{host}:{self.port}"

    @property
    def http_address(self) -> str:
        host = self.config.http_address.rpartition(":")[0]
        return f"{host}:{self.http_port}"

    async def start(self) -> None:
        # Claim every port before anything starts that would then need undoing.
        listeners: list[HttpGateway] = []
        try:
            config = self.config
            if config.http_address:
                self._gateway = HttpGateway(
                    config.http_address,
                    grace=config.grace,
                    tls=None if self._tls is None else uvicorn_tls_options(self._tls),
                    limits=HttpLimits.from_config(config),
                    thread=self._http_thread,
                    refused=self._count_refusal("gateway"),
                )
                listeners.append(self._gateway)
                self._gateway.reuse_port = config.workers > 1
                self.http_port = _bind(self._gateway, config.http_address)
            if config.metrics_address:
                self._metrics_listener = HttpGateway(
                    config.metrics_address,
                    grace=0.5,
                    name="metrics",
                    limits=HttpLimits.for_metrics(),
                    thread=self._http_thread,
                    refused=self._count_refusal("metrics"),
                )
                listeners.append(self._metrics_listener)
                self.metrics_port = _bind(self._metrics_listener, config.metrics_address)
            await self._start()
        except BaseException:
            for listener in listeners:
                await listener.stop()
            if self._http_thread is not None:
                self._http_thread.stop()
            raise

    def _count_refusal(self, listener: str) -> Callable[[str], None]:
        counter = self.metrics.http_refused

        def count(reason: str) -> None:
            counter.labels(listener, reason).inc()

        return count

    async def _start(self) -> None:
        await self.store.open()
        self._pipeline.start()
        await self.plans.start()
        service = IngestService(self._pipeline, self.store, metrics=self.metrics, plans=self.plans)
        plans = PlansService(self.plans, self.store, service.on_core)
        self._reads = reads = await ReadService.start(
            self.store,
            ReadLimits(
                self.config.feed_max_bytes,
                self.config.stream_buffer_bytes,
                self.config.stream_stall_timeout,
            ),
        )
        self.retention.start()
        self.destinations.start()
        server, self.port = build_grpc_server(
            self.config,
            service,
            reads,
            health_servicer=self._health,
            metrics=self.metrics,
            tracer=self._tracer,
            auth=self.auth,
            limiter=self._limiter,
            tls=self._tls,
            budget=self.budget,
            destinations=self.destination_ops,
            plans=plans,
        )
        # Bound before either starts: a taken probe port fails startup like the main one.
        self._probe, self.health_port = build_probe_server(self.config, self._health, self._tls)
        await server.start()
        self._grpc = server
        if self._probe is not None:
            await self._probe.start()
        if self._gateway is not None:
            await self._gateway.start(
                GatewayApp(
                    service,
                    reads=reads,
                    ready=lambda: self._store_watch.serving and not self._draining,
                    max_body_bytes=self.config.http_max_body_bytes,
                    auth=self.auth,
                    limiter=self._limiter,
                    metrics=self.metrics,
                    tracer=self._tracer,
                    budget=self.budget,
                    reflection=self.config.reflection,
                    max_stream_events=self.config.max_stream_events,
                    max_stream_bytes=self.config.max_stream_bytes,
                    destinations=self.destination_ops,
                    plans=plans,
                )
            )
        if self._metrics_listener is not None:
            await self._metrics_listener.start(make_asgi_app(self.metrics.registry))
        await self._store_watch.set_serving(serving=True)
        self._store_watch.start()
        log.info(
            "serving",
            extra={
                "grpc_address": self.address,
                "health_port": self.health_port or "off",
                "http_address": self.http_address if self._gateway is not None else "",
                "metrics_address": (
                    _with_port(self.config.metrics_address, self.metrics_port)
                    if self._metrics_listener is not None
                    else ""
                ),
                "store": redact(self.config.store),
                "tls": "mtls" if self.config.tls_client_ca else "on" if self._tls else "off",
                "auth_tokens": len(self.auth) if self.auth is not None else "off",
                "pid": os.getpid(),
            },
        )

    def reload_auth(self) -> None:
        """Re-read the token file (SIGHUP); a bad file keeps the tokens in force."""
        if self.auth is None:
            log.info("SIGHUP ignored: no --auth-tokens file to reload")
            return
        try:
            count = self.auth.reload()
        except ValueError as exc:
            # The message names the file and line; a traceback would add nothing.
            log.error("auth tokens not reloaded, previous ones stay in force: %s", exc)  # noqa: TRY400
            return
        log.info("auth tokens reloaded", extra={"auth_tokens": count})

    async def stop(self, grace: float | None = None) -> None:
        """Drain and stop; safe to call more than once."""
        if self._draining:
            await self._stopped.wait()
            return
        self._draining = True
        self.metrics.draining.set(1)
        grace = self.config.grace if grace is None else grace
        log.info("draining", extra={"grace_s": grace})
        await self._health.enter_graceful_shutdown()
        self._store_watch.stop()
        # Streams that never end by themselves (watch, export with follow) end
        # now with UNAVAILABLE, so that their clients resume on another replica
        # instead of holding the drain for the whole grace period.
        if self._reads is not None:
            await self._reads.close()
        await self.retention.close()
        await self.destinations.close()
        await self.plans.close()
        # Both front doors drain at once: each refuses new work and lets what is
        # in flight finish, then the pipeline commits everything they queued.
        drains = [grpcs.stop(grace) for grpcs in (self._grpc, self._probe) if grpcs is not None]
        if self._gateway is not None:
            drains.append(self._gateway.stop(grace))
        await asyncio.gather(*drains)
        await self._pipeline.close(timeout=max(grace, 5.0))
        await self.store.close()
        if self._metrics_listener is not None:
            await self._metrics_listener.stop()
        if self._http_thread is not None:
            self._http_thread.stop()
        if self._traces is not None:
            # Spans still batched for export would be lost with the process.
            await asyncio.to_thread(self._traces.shutdown)
        log.info("stopped")
        self._stopped.set()


def _bind(listener: HttpGateway, address: str) -> int:
    try:
        return listener.bind()
    except OSError as exc:
        raise RuntimeError(f"cannot listen on {address}: {exc}") from exc


def _with_port(address: str, port: int) -> str:
    return f"{address.rpartition(':')[0]}:{port}"
