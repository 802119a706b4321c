"""``--workers N``: N server processes behind the same ports, under one supervisor.

CPython runs one thread of Python at a time, so one process serves from one
core. Each worker is a whole eventwire server (gRPC, HTTP gateway, pipeline,
store connection); the kernel spreads new connections over them:

* gRPC and the HTTP gateway: every worker listens on the same port with
  ``SO_REUSEPORT`` (opted into only here: a lone server keeps it off, so two
  servers never silently share a port). A port of 0 is resolved once, by the
  supervisor, which keeps a bound (not listening) socket on it so the port
  stays reserved for the workers and is not handed to anyone else.
* ``/metrics``: Prometheus counters are per process, and a shared port would
  answer each scrape from a random worker. Worker ``i`` listens on the metrics
  port plus ``i`` (9464, 9465, ... by default), one scrape target per worker;
  with port 0 each worker picks its own and logs it in its ``serving`` line.

Storage stays correct with several writers: PostgreSQL takes concurrent
transactions, and SQLite serialises writers on its file lock (each worker
group-commits on its own; they queue for the lock); the composition root
holds the one-server-per-file lock (``<file>.lock``) in the supervisor for
all of them, so another server on the same file is still refused. Measured
on 2 cores (docs/benchmarks.md), two SQLite workers stored batches no faster than one
(1.02x) and unary calls 1.2x faster, below what a second process costs in
memory and complexity; so ``--workers 0`` ("auto", the default) means one
worker per core with PostgreSQL and one process with SQLite. The supervisor
applies migrations once (the ``prepare`` step the composition root passes),
before the workers start, so they never race to migrate. It knows nothing of
gRPC: each worker runs the target callable it is given.

Shutdown: SIGTERM or SIGINT to the supervisor is forwarded to every worker as
SIGTERM; each drains as a single server does (health NOT_SERVING, in-flight
RPCs finish, the pipeline commits, the store closes) and the supervisor exits
0 once all of them did. A worker that dies on its own takes the others down
with it (the supervisor drains them and exits non-zero), so that systemd or
Kubernetes restarts the whole server rather than it running short-handed.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
from collections.abc import Callable
from types import FrameType

from eventwire.config import ServerConfig

log = logging.getLogger("eventwire.workers")


def worker_count(config: ServerConfig) -> int:
    """How many server processes ``config`` asks for, with 0 ("auto") resolved."""
    if config.workers:
        return config.workers
    if config.store.startswith("sqlite:"):
        return 1
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


def _reserve(address: str) -> tuple[str, socket.socket | None]:
    """``address`` with a concrete port, and the socket holding it (for port 0)."""
    host, port = _split(address)
    if port:
        return address, None
    bare = host.strip("[]") or None
    family, kind, proto, _, sockaddr = socket.getaddrinfo(
        bare, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(sockaddr)
    except OSError:
        sock.close()
        raise
    return f"{host}:{sock.getsockname()[1]}", sock


def worker_config(config: ServerConfig, index: int) -> ServerConfig:
    """Worker ``index``'s configuration (ports already concrete, see the module docstring)."""
    metrics = config.metrics_address
    if metrics:
        host, port = _split(metrics)
        metrics = f"{host}:{port + index if port else 0}"
    return dataclasses.replace(config, metrics_address=metrics)


def _die_with(supervisor: int) -> None:
    """Have the kernel SIGTERM this worker when the supervisor dies, however it dies.

    Without it a SIGKILLed supervisor leaves its workers serving the port with
    nobody to stop them. Linux only (prctl); elsewhere the supervisor's own
    signal handling is all there is.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != supervisor:  # it died before prctl took effect
        raise SystemExit(1)


Target = Callable[[ServerConfig], int]
"""What a worker runs: serve with this configuration until SIGTERM; the exit code."""


def _worker(config: ServerConfig, index: int, supervisor: int, target: Target) -> None:
    from eventwire.observability import logs

    _die_with(supervisor)
    logs.configure(config.log_level, config.log_format)
    # The supervisor forwards SIGINT as SIGTERM; a terminal's Ctrl-C reaches the
    # whole process group as well, and either one means "drain".
    code = target(config)
    log.info("worker %d exited with %d", index, code)
    raise SystemExit(code)


def supervise(
    config: ServerConfig, count: int, target: Target, prepare: Target | None = None
) -> int:
    """Run ``count`` workers until SIGTERM/SIGINT, then drain them all; the exit code.

    ``target`` runs in each worker process (it must be picklable: a module-level
    function); ``prepare`` runs once here before any worker starts, and a
    non-zero result from it is the exit code, with no worker started.
    """
    reserved: list[socket.socket] = []
    try:
        address, held = _reserve(config.address)
        reserved += [held] if held else []
        http_address = config.http_address
        if http_address:
            http_address, held = _reserve(http_address)
            reserved += [held] if held else []
        shared = dataclasses.replace(
            config, address=address, http_address=http_address, workers=count
        )
    except OSError as exc:
        log.critical("cannot listen: %s", exc)
        return 1
    try:
        return (prepare(shared) if prepare is not None else 0) or _run_workers(
            shared, count, target
        )
    finally:
        for sock in reserved:
            sock.close()


def _run_workers(config: ServerConfig, count: int, target: Target) -> int:
    context = multiprocessing.get_context("spawn")  # no fork after grpc has threads
    processes: list[multiprocessing.process.BaseProcess] = []
    stopping = False
    exit_code = 0

    def stop_all(signum: int = signal.SIGTERM, frame: FrameType | None = None) -> None:
        nonlocal stopping
        if not stopping:
            log.info("stopping %d workers", count, extra={"signal": signum})
        stopping = True
        for process in processes:
            if process.pid is not None and process.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)

    def forward_hup(signum: int, frame: FrameType | None) -> None:
        # SIGHUP reloads --auth-tokens; every worker holds its own copy.
        for process in processes:
            if process.pid is not None and process.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGHUP)

    previous = {sig: signal.signal(sig, stop_all) for sig in (signal.SIGTERM, signal.SIGINT)}
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, forward_hup)
    try:
        for index in range(count):
            if stopping:
                break
            process = context.Process(
                target=_worker,
                args=(worker_config(config, index), index, os.getpid(), target),
                name=f"eventwire-worker-{index}",
            )
            process.start()
            processes.append(process)
        if stopping:  # a signal came while starting: stop the ones that started late
            stop_all()
        log.info(
            "supervising",
            extra={"workers": count, "pids": [p.pid for p in processes], "supervisor": os.getpid()},
        )
        running = {process.sentinel: process for process in processes}
        while running:
            for sentinel in multiprocessing.connection.wait(list(running)):
                assert isinstance(sentinel, int)  # noqa: S101 - process sentinels are fds
                ended = running.pop(sentinel)
                ended.join()
                code = ended.exitcode if ended.exitcode is not None else 1
                if not stopping:
                    log.error(
                        "%s exited on its own (code %d); stopping the others", ended.name, code
                    )
                    exit_code = code or 1
                    stop_all()
                elif code and not exit_code:
                    exit_code = code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("all workers stopped", extra={"exit_code": exit_code})
    return exit_code
