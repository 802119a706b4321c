"""The process around the server: signals, the event loop, workers.

``run`` is what ``eventwire serve`` calls: one server in this process, or
``--workers`` processes under the supervisor. ``serve`` runs one
:class:`~eventwire.runtime.server.Server` until SIGTERM or SIGINT and drains it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal

from eventwire.config import ServerConfig
from eventwire.observability import logs
from eventwire.runtime.server import Server
from eventwire.store import StoreError, open_store
from eventwire.store.sqlite import DatabaseLock

__all__ = ["migrate_once", "run", "run_one", "serve"]

log = logging.getLogger("eventwire.server")


async def serve(config: ServerConfig) -> int:
    """Run until SIGTERM or SIGINT, then drain; the process's exit code."""
    try:
        server = Server(config)
    except ValueError as exc:  # e.g. a store URL that parses but makes no sense
        log.critical("invalid configuration: %s", exc)
        return 2
    # Handlers first: a signal that arrives while starting still means "drain".
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, server.reload_auth)
    try:
        try:
            await server.start()
        except StoreError as exc:  # the message names the file or database, and what to do
            log.critical("cannot open storage: %s", exc)
            return 1
        except RuntimeError as exc:  # an address that cannot be bound; exc names it
            log.critical("cannot listen: %s", exc)
            await server.store.close()
            return 1
        _freeze_startup_heap()
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
    await server.stop()
    if getattr(server.store, "must_exit_at_once", False):
        # Finalizing what the store had to leave open would crash the process.
        logging.shutdown()
        os._exit(0)
    return 0


def _freeze_startup_heap() -> None:
    """Hide everything allocated at startup from the cyclic garbage collector.

    Modules, descriptors and the grpcio/OpenTelemetry/prometheus objects (~40k)
    live as long as the process, yet every full collection walks them all:
    ~20 ms with the event loop stopped, which was the slowest 0.1 % of unary
    calls. Frozen, a full collection walks only what requests allocated.
    """
    gc.collect()
    gc.freeze()


def run(config: ServerConfig) -> int:
    """Serve in this process, or in ``--workers`` processes under a supervisor."""
    from eventwire.runtime import supervisor

    count = supervisor.worker_count(config)
    if count <= 1:
        return run_one(config)
    # The workers share one SQLite file on purpose; the supervisor holds the
    # one-server-per-file lock for them, for as long as they run.
    lock = DatabaseLock(config.store.removeprefix("sqlite:///"))
    if config.store.startswith("sqlite:///"):
        try:
            lock.acquire()
        except StoreError as exc:
            log.critical("cannot open storage: %s", exc)
            return 1
    try:
        return supervisor.supervise(config, count, run_one, prepare=migrate_once)
    finally:
        lock.release()


def run_one(config: ServerConfig) -> int:
    """Serve on uvloop when it is installed, else on the default asyncio loop."""
    logs.route_native_stderr()
    loop_factory = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(serve(config))


def migrate_once(config: ServerConfig) -> int:
    """Open the store once (applying migrations); 0, or the exit code a lone server gives."""
    try:
        store = open_store(
            config.store, sqlite_synchronous=config.sqlite_synchronous, exclusive=False
        )
    except ValueError as exc:
        log.critical("invalid configuration: %s", exc)
        return 2

    async def once() -> None:
        await store.open()
        await store.close()

    try:
        asyncio.run(once())
    except StoreError as exc:
        log.critical("cannot open storage: %s", exc)
        return 1
    return 0
