"""A fault-injecting TCP proxy for tests: latency, jitter, drops, resets, blackholes, bandwidth.

It sits between a client and any TCP service (gRPC, PostgreSQL, HTTP) and
forwards bytes both ways, so faults are real socket behaviour rather than
mocks. Faults are switched at run time with :meth:`FaultProxy.set_faults`; they
apply to every open connection and to new ones.

Example::

    async with FaultProxy("127.0.0.1:5432") as proxy:
        dsn = f"postgresql://user@{proxy.address}/db"
        ...
        proxy.reset_connections()          # every open connection gets a TCP RST
        proxy.set_faults(blackhole=True)   # bytes are swallowed, nothing answers
        proxy.set_faults()                 # back to a clean link
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Self

_CHUNK: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class _Faults:
    latency: float = 0.0
    jitter: float = 0.0
    blackhole: bool = False
    bandwidth: float | None = None
    drop: float = 0.0


def _split(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"address must be HOST:PORT, got {address!r}")
    return host.strip("[]"), int(port)


def _abort_with_rst(writer: asyncio.StreamWriter) -> None:
    # A zero linger timeout makes close() send RST instead of FIN: the peer
    # sees "connection reset", like a crashed host or a middlebox cutting it.
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Connection:
    """One proxied client connection and its upstream twin."""

    def __init__(self, proxy: FaultProxy, client: asyncio.StreamWriter) -> None:
        self._proxy = proxy
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.task: asyncio.Task[None] | None = None
        self.closed = False

    def reset(self) -> None:
        if self.closed:
            return
        self.closed = True
        _abort_with_rst(self.client)
        if self.upstream is not None:
            _abort_with_rst(self.upstream)
        # Bytes still held back by latency or bandwidth caps die with the
        # connection rather than keep its tasks alive.
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()

    async def run(self, client_reader: asyncio.StreamReader, upstream: str) -> None:
        try:
            host, port = _split(upstream)
            try:
                up_reader, up_writer = await asyncio.open_connection(host, port)
            except OSError:
                # Nothing listens upstream: the client sees its connection reset,
                # as it would through a real load balancer with no backend.
                self.reset()
                return
            self.upstream = up_writer
            if self.closed:
                # reset_connections() ran while we were connecting.
                _abort_with_rst(up_writer)
                return
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._pump(client_reader, up_writer))
                tg.create_task(self._pump(up_reader, self.client))
        except* (OSError, asyncio.IncompleteReadError, _Cut):
            pass
        finally:
            self.reset()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Chunks are delayed through a queue rather than by sleeping before each
        # write, so latency adds delay without cutting throughput, and order is kept.
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        async def deliver() -> None:
            while (item := await queue.get()) is not None:
                due, data = item
                if (wait := due - loop.time()) > 0:
                    await asyncio.sleep(wait)
                await self._throttle(len(data))
                writer.write(data)
                await writer.drain()
            # The reading side ended cleanly: pass the half-close on.
            if writer.can_write_eof():
                with contextlib.suppress(OSError):
                    writer.write_eof()

        async with asyncio.TaskGroup() as tg:
            tg.create_task(deliver())
            last_due = 0.0
            while data := await reader.read(_CHUNK):
                faults = self._proxy.faults
                if faults.drop and self._proxy.rng.random() < faults.drop:
                    raise _Cut
                if faults.blackhole:
                    continue
                delay = faults.latency
                if faults.jitter:
                    delay += self._proxy.rng.uniform(0.0, faults.jitter)
                last_due = max(last_due, loop.time() + delay)
                queue.put_nowait((last_due, data))
            queue.put_nowait(None)

    async def _throttle(self, size: int) -> None:
        # Bytes queued before a blackhole began are held, not sent, until it ends.
        await self._proxy.link_up.wait()
        bandwidth = self._proxy.faults.bandwidth
        if bandwidth:
            await asyncio.sleep(size / bandwidth)


class _Cut(Exception):
    """A chunk drew the short straw under ``drop``: the connection is cut."""


class FaultProxy:
    """Forward TCP from :attr:`address` to ``upstream``, injecting faults on demand.

    ``latency`` and ``jitter`` (seconds, jitter uniform in ``[0, jitter]``) delay
    every chunk each way; ``blackhole`` swallows bytes without answering or
    closing; ``bandwidth`` caps each direction in bytes per second; ``drop`` is
    the probability, per chunk, that the connection is cut with a TCP RST.
    """

    def __init__(self, upstream: str, *, listen: str = "127.0.0.1:0") -> None:
        _split(upstream)
        self._listen = _split(listen)
        self._upstream = upstream
        self.faults = _Faults()
        # Set while no blackhole is on; delivery waits on it.
        self.link_up = asyncio.Event()
        self.link_up.set()
        # Fault injection, not cryptography: a plain PRNG is what we want.
        self.rng = random.Random()  # noqa: S311
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._accepted = 0
        self._address = ""

    @property
    def address(self) -> str:
        """``host:port`` clients should connect to (the real port once started)."""
        if not self._address:
            raise RuntimeError("FaultProxy is not started")
        return self._address

    @property
    def accepted(self) -> int:
        """Connections accepted since start: a client that never connects leaves it unchanged."""
        return self._accepted

    @property
    def upstream(self) -> str:
        return self._upstream

    @property
    def open_connections(self) -> int:
        return sum(not c.closed for c in self._connections)

    def set_faults(
        self,
        latency: float = 0.0,
        jitter: float = 0.0,
        blackhole: bool = False,
        bandwidth: float | None = None,
        drop: float = 0.0,
    ) -> None:
        """Replace every fault setting at once; no arguments means a clean link."""
        if latency < 0 or jitter < 0:
            raise ValueError("latency and jitter must not be negative")
        if bandwidth is not None and bandwidth <= 0:
            raise ValueError("bandwidth must be positive bytes per second, or None")
        if not 0.0 <= drop <= 1.0:
            raise ValueError("drop is a probability in [0, 1]")
        self.faults = _Faults(latency, jitter, blackhole, bandwidth, drop)
        if blackhole:
            self.link_up.clear()
        else:
            self.link_up.set()

    def set_upstream(self, address: str) -> None:
        """Send new connections to ``address``; open ones keep their upstream."""
        _split(address)
        self._upstream = address

    def reset_connections(self) -> None:
        """Cut every open connection with a TCP RST, both to the client and upstream."""
        for conn in list(self._connections):
            conn.reset()

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("FaultProxy already started")
        host, port = self._listen
        self._server = await asyncio.start_server(self._accept, host, port)
        sockname = self._server.sockets[0].getsockname()
        self._address = f"{host}:{sockname[1]}"

    async def stop(self) -> None:
        """Stop listening, reset every open connection, and wait for their tasks."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        self.reset_connections()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._accepted += 1
        conn = _Connection(self, writer)
        if self._server is None:
            conn.reset()
            return
        self._connections.add(conn)
        task = conn.task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await conn.run(reader, self._upstream)
        except asyncio.CancelledError:
            if task is None or not conn.closed:
                raise
            # Cancelled by our own reset(): that is how this connection ends.
            task.uncancel()
        finally:
            self._connections.discard(conn)
            if task is not None:
                self._tasks.discard(task)
