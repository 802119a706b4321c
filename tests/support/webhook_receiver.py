"""A scriptable webhook receiver: a real HTTP/1.1 server on 127.0.0.1:0 (TLS optional).

Written on asyncio streams rather than an ASGI server so a test can make it
misbehave at the byte level: hang without answering, cut the connection,
answer and then trickle or never finish the body. Every request is recorded
with its raw body and headers (for signature checks) and what it was given.

A responder decides each answer from the request; :class:`Chaos` is the
deterministic mix the destination tests use (503 every Nth, hang every Mth,
400 for chosen batches), and ``receiver.responder`` can be swapped at any
moment ("the receiver is fixed").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self

from eventwire.destinations.sink import Item


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True)
class Hang:
    """Never answer: wait until the client gives up and closes the connection."""


@dataclass(frozen=True)
class Drop:
    """Close the connection without a word."""


@dataclass(frozen=True)
class Endless:
    """Send the status line and headers, then ``size`` bytes of body in chunks (or, with
    ``stall``, stop after the headers and wait for the client to leave)."""

    status: int = 200
    size: int = 1 << 30
    stall: bool = False


Action = Answer | Hang | Drop | Endless


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    """Lower-cased names."""
    body: bytes
    at: float
    action: Action = field(default_factory=Answer)
    body_bytes_sent: int = 0

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    def json(self) -> Any:
        return json.loads(self.body)


Responder = Callable[[Received], Action]


def always(action: Action) -> Responder:
    return lambda _request: action


def script(*actions: Action, then: Action | None = None) -> Responder:
    """``actions`` in turn, then ``then`` (204 unless told) for every later request."""
    queue = list(actions)
    last = then or Answer(204)
    return lambda _request: queue.pop(0) if queue else last


class Chaos:
    """503 on every ``unavailable_every``-th request, a hang on every ``hang_every``-th,
    and 400 for any batch holding an id in ``reject_ids`` (each rule off when 0/empty).

    Counted, not random, so a failing run replays the same way.
    """

    def __init__(
        self,
        *,
        unavailable_every: int = 3,
        hang_every: int = 0,
        reject_ids: Collection[str] = (),
        retry_after: str | None = None,
    ) -> None:
        self.count = 0
        self.unavailable_every = unavailable_every
        self.hang_every = hang_every
        self.reject_ids = frozenset(reject_ids)
        self.retry_after = retry_after

    def __call__(self, request: Received) -> Action:
        self.count += 1
        if self.reject_ids and self.reject_ids & {e["id"] for e in request.json()["data"]}:
            return Answer(400, body=b'{"error":"this batch holds an event we refuse"}')
        if self.hang_every and self.count % self.hang_every == 0:
            return Hang()
        if self.unavailable_every and self.count % self.unavailable_every == 0:
            headers = {"retry-after": self.retry_after} if self.retry_after else {}
            return Answer(503, headers, b"try later")
        return Answer(204)


class WebhookReceiver:
    """``async with WebhookReceiver(responder) as receiver:`` then POST to ``receiver.url``."""

    def __init__(
        self, responder: Responder | None = None, *, tls: ssl.SSLContext | None = None
    ) -> None:
        self.responder: Responder = responder or always(Answer(204))
        self.received: list[Received] = []
        self.connections = 0
        self._tls = tls
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._changed = asyncio.Event()
        self.url = ""

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._tls)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"{'https' if self._tls else 'http'}://127.0.0.1:{port}/hook"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        # Closing the connections ends every handler (a hang reads EOF) without
        # cancelling tasks that asyncio's stream callbacks then complain about.
        for writer in self._writers:
            writer.transport.abort()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    def answered(self, status: int | None = None) -> list[Received]:
        """Requests given an :class:`Answer` (with ``status``, if given)."""
        return [
            r
            for r in self.received
            if isinstance(r.action, Answer) and (status is None or r.action.status == status)
        ]

    async def wait_for(
        self, predicate: Callable[[WebhookReceiver], bool], timeout: float = 10.0
    ) -> None:
        """Until ``predicate(self)`` holds, woken by each request rather than polling."""
        async with asyncio.timeout(timeout):
            while not predicate(self):
                self._changed.clear()
                await self._changed.wait()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self.connections += 1
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass  # the client went away mid-request: that is its right
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; False when the connection is done."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        request_line, *lines = head.decode("latin-1").split("\r\n")
        method, path, _version = request_line.split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        request = Received(method, path, headers, body, time.monotonic())
        request.action = action = self.responder(request)
        self.received.append(request)
        self._changed.set()
        if isinstance(action, Drop):
            return False
        if isinstance(action, Hang):
            await reader.read()  # until the client closes
            return False
        if isinstance(action, Endless):
            await self._endless(action, request, reader, writer)
            return False
        reason = _reason(action.status)
        out = [f"HTTP/1.1 {action.status} {reason}", f"content-length: {len(action.body)}"]
        out += [f"{name}: {value}" for name, value in action.headers.items()]
        writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + action.body)
        await writer.drain()
        request.body_bytes_sent = len(action.body)
        return headers.get("connection", "").lower() != "close"

    async def _endless(
        self,
        action: Endless,
        request: Received,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        reason = _reason(action.status)
        writer.write(
            f"HTTP/1.1 {action.status} {reason}\r\ncontent-length: {action.size}\r\n\r\n".encode()
        )
        await writer.drain()
        if action.stall:
            await reader.read()
            return
        chunk = b"x" * 65536
        while request.body_bytes_sent < action.size:
            writer.write(chunk)
            await writer.drain()  # raises once the client has closed
            request.body_bytes_sent += len(chunk)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Whatever"


def sample_batch(n: int, *, start: int = 0, tenant: str = "acme") -> list[Item]:
    """``n`` committed rows as the relay would hand them over: events, every fifth an alert."""
    rows: list[Item] = []
    for position in range(start, start + n):
        committed_at_ms = 1_765_000_000_000 + position
        payload: dict[str, object]
        if position % 5 == 4:
            key = f"trk-{position}"
            payload = {"trackingId": key, "deviceId": "dev-1", "alertType": "overheat"}
            rows.append(
                Item("alert", position, tenant, key, "overheat", _json(payload), committed_at_ms)
            )
        else:
            key = f"evt-{position}"
            payload = {"eventId": key, "eventName": "signup", "properties": {"n": position}}
            rows.append(
                Item("event", position, tenant, key, "signup", _json(payload), committed_at_ms)
            )
    return rows


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
