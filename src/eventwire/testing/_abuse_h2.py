"""A raw HTTP/2 client for abusing a gRPC server in tests and benchmarks.

It speaks the protocol with ``h2`` over a plain socket, so it can do what no
well-behaved gRPC client does: flood PINGs, open and reset streams as fast as
the socket takes them, or hold connections without ever finishing a
handshake. Needs the ``h2`` package (a development dependency of eventwire,
not a runtime one).
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Final, Self

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions

_READ: Final = 65536


def grpc_headers(method: str, authority: str = "localhost") -> list[tuple[str, str]]:
    """The request headers of a gRPC call to ``method`` (``/pkg.Service/Method``)."""
    return [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", method),
        (":authority", authority),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """Resident memory of process ``pid`` in KiB (Linux): ``VmRSS`` (now) or
    ``VmHWM`` (the peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for pid {pid}")


@dataclass
class Seen:
    """What the server sent on one connection."""

    goaway: h2.events.ConnectionTerminated | None = None
    settings: dict[int, int] = field(default_factory=dict)
    pings_acked: int = 0
    resets: int = 0
    closed: bool = False
    """The server closed the TCP connection."""


class RawH2:
    """One client HTTP/2 connection, driven by hand. Not thread-safe."""

    def __init__(self, address: str, *, timeout: float = 5.0) -> None:
        host, _, port = address.rpartition(":")
        self.sock = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self.seen = Seen()
        self.conn.initiate_connection()
        self.flush()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def ping(self, count: int = 1) -> None:
        for i in range(count):
            self.conn.ping(i.to_bytes(8, "big"))
        self.flush()

    def poll(self, timeout: float) -> Seen:
        """Read and answer what the server sent, for up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not self.seen.closed:
            remaining = deadline - time.monotonic()
            self.sock.settimeout(max(remaining, 0.0) or 0.0001)
            try:
                data = self.sock.recv(_READ)
            except (TimeoutError, BlockingIOError):
                break
            except OSError:
                self.seen.closed = True
                break
            if not data:
                self.seen.closed = True
                break
            self._receive(data)
            if remaining <= 0:
                break
        return self.seen

    def wait_for(self, what: str, timeout: float) -> bool:
        """Poll until the server sent a GOAWAY (``"goaway"``) or closed (``"closed"``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll(min(0.1, max(0.0, deadline - time.monotonic())))
            if (what == "goaway" and self.seen.goaway is not None) or (
                what == "closed" and self.seen.closed
            ):
                return True
            if self.seen.closed:
                return False
        return False

    def _receive(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.seen.closed = True
            return
        for event in events:
            if isinstance(event, h2.events.ConnectionTerminated):
                self.seen.goaway = event
            elif isinstance(event, h2.events.RemoteSettingsChanged):
                for key, changed in event.changed_settings.items():
                    self.seen.settings[int(key)] = changed.new_value
            elif isinstance(event, h2.events.PingAckReceived):
                self.seen.pings_acked += 1
            elif isinstance(event, h2.events.StreamReset):
                self.seen.resets += 1
        with contextlib.suppress(OSError):
            self.flush()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@contextlib.contextmanager
def idle_connections(address: str, count: int, *, preface: bool) -> Iterator[list[socket.socket]]:
    """``count`` TCP connections that stop after the HTTP/2 preface (or send nothing)."""
    host, _, port = address.rpartition(":")
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            try:
                sock = socket.create_connection((host, int(port)), timeout=5)
            except OSError:
                break
            socks.append(sock)
            if preface:
                with contextlib.suppress(OSError):
                    sock.sendall(
                        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                        + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
                    )
        yield socks
    finally:
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.close()
