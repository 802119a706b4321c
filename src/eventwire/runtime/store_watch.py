"""Storage health as the server's health: what turns a store fault into NOT_SERVING
and back.

The pipeline reports each commit's outcome; a watchdog notices faults while no
write comes to find them (a deleted file, ``chattr +i``); a probe retries until
storage recovers. Health goes NOT_SERVING while storage is down and SERVING
again once a probe passes; the ``liveness`` service stays SERVING throughout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final

from grpc_health.v1 import health_pb2

from eventwire._rpc import SERVICE_NAMES
from eventwire.frontends.grpc.health import HealthServicer
from eventwire.observability.metrics import ServerMetrics
from eventwire.store import Store, StoreGone, StoreUnavailable

log = logging.getLogger("eventwire.server")

LIVENESS: Final = "liveness"
"""A health service name that is SERVING while the process serves at all, whatever
storage does: a liveness probe on it restarts a wedged process, never one that
merely waits for its database (restarting cannot fix that)."""


class StoreWatch:
    """Keeps the health service's statuses in step with the store's."""

    def __init__(
        self,
        store: Store,
        health: HealthServicer,
        metrics: ServerMetrics,
        *,
        interval: float,
        draining: Callable[[], bool],
    ) -> None:
        self._store = store
        self._health = health
        self._metrics = metrics
        self._interval = interval
        self._draining = draining
        self.serving = False
        self._probe: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._lost = False

    def start(self) -> None:
        self._watchdog = asyncio.get_running_loop().create_task(
            self._watch(), name="eventwire-store-watchdog"
        )

    def stop(self) -> None:
        for task in (self._probe, self._watchdog):
            if task is not None:
                task.cancel()

    async def set_serving(self, *, serving: bool) -> None:
        self.serving = serving
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *SERVICE_NAMES):
            await self._health.set(name, status)
        if serving:
            await self._health.set(LIVENESS, status)

    def on_store_health(self, ok: bool, error: StoreUnavailable | None = None) -> None:
        """What the pipeline calls when a commit changes the store's health (and the watchdog
        on a fault)."""
        self._metrics.store_up.set(1 if ok else 0)
        if error is not None:
            self._note_fault(error)
        if self._draining():
            return
        loop = asyncio.get_running_loop()
        loop.create_task(self.set_serving(serving=ok))  # noqa: RUF006 - completes promptly
        if ok:
            log.info("storage recovered")
        elif self._probe is None or self._probe.done():
            log.error("storage unavailable (%s); probing until it recovers", error or "unknown")
            self._probe = loop.create_task(self._probe_until_up(), name="eventwire-store-probe")

    def _note_fault(self, error: StoreUnavailable) -> None:
        if isinstance(error, StoreGone) and not self._lost:
            self._lost = True
            self._metrics.store_lost.inc()
            log.critical("storage lost: %s", error)

    async def _watch(self) -> None:
        """Notice a fault while no write comes to find it (a deleted file, chattr +i)."""
        while True:
            await asyncio.sleep(self._interval)
            if not self.serving:
                continue  # the probe is on it
            try:
                await self._store.verify()
            except StoreUnavailable as exc:
                self.on_store_health(False, exc)
            except Exception:
                log.exception("storage watchdog failed")

    async def _probe_until_up(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self._store.check()
            except StoreUnavailable as exc:
                self._note_fault(exc)
                continue
            except Exception:
                log.exception("storage probe failed")
                continue
            self._metrics.store_up.set(1)
            await self.set_serving(serving=True)
            log.info("storage recovered")
            return
