"""Runs the gateway's ASGI app on uvicorn inside the gRPC server's event loop.

uvicorn normally owns the process: it installs SIGINT/SIGTERM handlers and
exits the process when it cannot bind. Embedded here, the composition root owns
both, so the listening socket is bound by us (a bind failure is an ordinary
exception, raised before anything else starts) and uvicorn's signal capture is
switched off (the root drains gRPC and HTTP together on one signal).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import ssl
from collections.abc import Iterator, Mapping
from typing import Any

import uvicorn

from eventwire.security.tls import ServerTls

log = logging.getLogger("eventwire.gateway")


class _EmbeddedServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
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
    ) -> None:
        """``tls``: uvicorn's ``ssl_*`` options; None serves plain HTTP."""
        self._name = name
        self._tls = dict(tls or {})
        self._address = address
        self._grace = grace
        self._sock: socket.socket | None = None
        self.reuse_port = False
        """Set before :meth:`bind` to share the port with other workers (SO_REUSEPORT)."""
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = 0

    def bind(self) -> int:
        """Bind the listening socket; raise :class:`OSError` if the address is taken."""
        self._sock = bind(self._address, reuse_port=self.reuse_port)
        self.port = self._sock.getsockname()[1]
        return self.port

    async def start(self, app: Any) -> None:
        """Serve ``app`` (any ASGI 3 application) on the bound socket."""
        if self._sock is None:
            self.bind()
        config = uvicorn.Config(
            app,
            http="httptools",
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
        server = _EmbeddedServer(config)
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
        log.info(f"{self._name} listening", extra={"http_address": f"{host}:{self.port}"})

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting, let in-flight requests finish within ``grace`` seconds."""
        if self._server is None or self._task is None:
            if self._sock is not None:
                self._sock.close()
            return
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
