"""Runs the gateway's ASGI app (and /metrics) on uvicorn, embedded in the server.

uvicorn normally owns the process: it installs SIGINT/SIGTERM handlers and
exits the process when it cannot bind. Embedded here, the composition root owns
both, so the listening socket is bound by us (a bind failure is an ordinary
exception, raised before anything else starts) and uvicorn's signal capture is
switched off (the root drains gRPC and HTTP together on one signal).

By default the HTTP listeners run on an :class:`HttpThread`: their own thread
and event loop, so that whatever HTTP clients make the server do (parse a
4 MiB batch, answer thousands of connections) never holds the gRPC loop. They
share the interpreter, so this isolates only as well as the longest step that
holds the GIL is short; :class:`~eventwire.frontends.http.limits.HttpLimits`
keeps every step short (no unbounded header, no unbounded body), and the
interpreter hands the GIL over every 5 ms (``sys.getswitchinterval()``).
``bench/abuse.py`` measures gRPC latency during HTTP attacks both ways.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import socket
import ssl
import threading
from collections.abc import Callable, Coroutine, Iterator, Mapping
from typing import Any, TypeVar

import uvicorn

from eventwire._loops import run_on
from eventwire.frontends.http.h2c import DualProtocol
from eventwire.frontends.http.limits import Handshakes, HttpLimits, Refusals
from eventwire.security.tls import ServerTls

T = TypeVar("T")

log = logging.getLogger("eventwire.gateway")


class _EmbeddedServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, handshake_timeout: float) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()
        self._handshake_timeout = handshake_timeout

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's start-up on our bound sockets (lifespan is off), with one
        difference: the TLS handshake's deadline. uvicorn leaves asyncio's
        default (60 s), long enough for idle connections to pile up."""
        assert sockets is not None  # noqa: S101 - HttpGateway always passes its socket
        config = self.config

        def create_protocol(_loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Protocol:
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=self.server_state, app_state={}, _loop=_loop
            )

        loop = asyncio.get_running_loop()
        timeout = None if config.ssl is None else self._handshake_timeout
        if config.ssl is not None:
            # HTTP/2 offered too (DualProtocol serves it): buf curl and browsers pick it.
            config.ssl.set_alpn_protocols(["h2", "http/1.1"])
        self.servers = [
            await loop.create_server(
                create_protocol,
                sock=sock,
                ssl=config.ssl,
                backlog=config.backlog,
                ssl_handshake_timeout=timeout,
            )
            for sock in sockets
        ]
        self.started = True
        self.ready.set()


def bind(address: str, *, reuse_port: bool = False) -> socket.socket:
    """A TCP socket bound to ``HOST:PORT`` (IPv6 hosts may be bracketed).

    ``reuse_port``: share the port with other processes that set it too
    (``--workers``); the kernel spreads connections over them.
    """
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or None  # type: ignore[assignment]
    infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        # Rebinding right after a restart must not wait for TIME_WAIT; unlike
        # SO_REUSEPORT this never lets two live servers share the port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(sockaddr)
    except OSError:
        sock.close()
        raise
    return sock


class HttpThread:
    """A thread running an event loop of its own (uvloop when installed) for HTTP."""

    def __init__(self, name: str = "eventwire-http") -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        try:
            import uvloop

            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        except ImportError:
            loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name=self._name, daemon=True)
        self._thread.start()

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` on this thread's loop."""
        if self._loop is None:
            self.start()
        assert self._loop is not None  # noqa: S101 - started above
        return await run_on(self._loop, coro)

    def stop(self) -> None:
        """Stop the loop and join the thread (after every listener on it has stopped)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        if not thread.is_alive():
            loop.close()
        self._loop = self._thread = None


class HttpGateway:
    """The gateway's listener: :meth:`bind`, then :meth:`start`, eventually :meth:`stop`.

    Binding is separate so that the composition root can claim the port before
    it opens storage or starts anything that would then need undoing.
    """

    def __init__(
        self,
        address: str,
        *,
        grace: float,
        name: str = "http gateway",
        tls: Mapping[str, Any] | None = None,
        limits: HttpLimits | None = None,
        thread: HttpThread | None = None,
        refused: Callable[[str], None] | None = None,
    ) -> None:
        """``tls``: uvicorn's ``ssl_*`` options; None serves plain HTTP. ``thread``:
        where to serve; None serves on the caller's event loop. ``refused`` is
        called with the reason of each connection refused by ``limits``."""
        self._name = name
        self._tls = dict(tls or {})
        self._address = address
        self._grace = grace
        self._limits = limits or HttpLimits()
        self._thread = thread
        self._refused = refused
        self._sock: socket.socket | None = None
        self.reuse_port = False
        """Set before :meth:`bind` to share the port with other workers (SO_REUSEPORT)."""
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = 0

    @property
    def limits(self) -> HttpLimits:
        return self._limits

    def bind(self) -> int:
        """Bind the listening socket; raise :class:`OSError` if the address is taken."""
        self._sock = bind(self._address, reuse_port=self.reuse_port)
        self.port = self._sock.getsockname()[1]
        return self.port

    async def start(self, app: Any) -> None:
        """Serve ``app`` (any ASGI 3 application) on the bound socket."""
        if self._thread is None:
            await self._start(app)
        else:
            await self._thread.run(self._start(app))

    async def _start(self, app: Any) -> None:
        if self._sock is None:
            self.bind()
        limits = self._limits
        config = uvicorn.Config(
            app,
            http=functools.partial(  # type: ignore[arg-type]
                DualProtocol,
                limits=limits,
                refusals=Refusals(limits.max_connections),
                refused=self._refused,
                handshakes=Handshakes(limits.handshake_timeout) if self._tls else None,
            ),
            lifespan="off",
            interface="asgi3",
            log_config=None,
            access_log=False,
            server_header=False,
            proxy_headers=False,
            ws="none",
            timeout_graceful_shutdown=max(1, math.ceil(self._grace)),
            **self._tls,
        )
        server = _EmbeddedServer(config, limits.handshake_timeout)
        self._server = server
        assert self._sock is not None  # noqa: S101 - bound above
        self._task = asyncio.get_running_loop().create_task(
            server.serve(sockets=[self._sock]), name="eventwire-http-gateway"
        )
        ready = asyncio.ensure_future(server.ready.wait())
        await asyncio.wait({ready, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if not server.ready.is_set():
            ready.cancel()
            await self._task  # re-raises why uvicorn could not start
            raise RuntimeError("HTTP gateway stopped during startup")
        host = self._address.rpartition(":")[0]
        log.info(
            f"{self._name} listening",
            extra={
                "http_address": f"{host}:{self.port}",
                "max_connections": limits.max_connections,
                "own_thread": self._thread is not None,
            },
        )

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting, let in-flight requests finish within ``grace`` seconds."""
        if self._server is None or self._task is None:
            if self._sock is not None:
                self._sock.close()
            return
        if self._thread is None:
            await self._stop(grace)
        else:
            await self._thread.run(self._stop(grace))

    async def _stop(self, grace: float | None) -> None:
        assert self._server is not None and self._task is not None  # noqa: S101, PT018
        if grace is not None:
            self._server.config.timeout_graceful_shutdown = max(1, math.ceil(grace))
        self._server.should_exit = True
        await self._task


def uvicorn_tls_options(tls: ServerTls) -> dict[str, Any]:
    """uvicorn.Config keyword arguments serving ``tls``'s certificate (and mTLS)."""
    options: dict[str, Any] = {"ssl_certfile": tls.cert_file, "ssl_keyfile": tls.key_file}
    if tls.client_ca_file:
        options["ssl_ca_certs"] = tls.client_ca_file
        options["ssl_cert_reqs"] = ssl.CERT_REQUIRED
    return options
