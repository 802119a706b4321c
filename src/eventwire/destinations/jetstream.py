"""NATS JetStream: every committed row one message, exactly once in the stream.

Subjects are ``eventwire.events.<tenant>.<event_name>`` and
``eventwire.alerts.<tenant>.<alert_type>`` (each token with every character
outside ``[A-Za-z0-9_-]`` replaced by ``_``); the payload is the row's JSON as
the gateway returns it. eventwire creates the stream when it is missing
(subjects ``eventwire.events.>`` and ``eventwire.alerts.>``, file storage, the
URL's ``replicas`` and ``duplicate_window``) and never changes an existing one.

Exactly once, beyond the stream's duplicate window. ``Nats-Msg-Id`` (the
tracking id of an alert; an event's id, prefixed ``<tenant>/`` for a tenant
other than the default one, since event ids are unique per tenant only) lets
JetStream drop a resend within the window; past it, two more rules keep the
stream exact:

* every publish names the sequence the stream must be at
  (``Nats-Expected-Last-Sequence``), so the stream only ever grows by this
  sink's messages in commit order, with no hole and no repeat: a message that
  raced another publisher, or followed one that was lost, is refused;
* every message carries the positions delivered up to and including it
  (``Eventwire-Events`` / ``Eventwire-Alerts``: ``xid.seq``), so after a
  restart, a refused publish or any doubt, the sink reads the stream's last
  message and skips what the stream already holds, whatever the relay's saved
  position says.

The stream therefore belongs to one destination: another publisher on it makes
every publish here fail (the relay retries and reports it).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
from collections.abc import Sequence
from typing import Any, Final

import nats
import nats.errors
import nats.js.errors
import orjson
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import StorageType, StreamConfig

from eventwire.destinations.sink import Item, Rejected, Retryable
from eventwire.store.base import ORIGIN, Position

log = logging.getLogger("eventwire.destinations")

PREFIX: Final = "eventwire"
SUBJECTS: Final = (f"{PREFIX}.events.>", f"{PREFIX}.alerts.>")
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_-]")
_WRONG_SEQUENCE: Final = 10071
_TOO_BIG: Final = 10054
CHUNK: Final = 250
WINDOW: Final = 3
_HEADER: Final = {"event": "Eventwire-Events", "alert": "Eventwire-Alerts"}


def token(text: str) -> str:
    """``text`` as one subject token."""
    return _UNSAFE.sub("_", text) or "_"


def subject(item: Item) -> str:
    kind = "events" if item.kind == "event" else "alerts"
    return f"{PREFIX}.{kind}.{token(item.tenant)}.{token(item.name)}"


_SUBJECTS: dict[tuple[str, str, str], bytes] = {}
_MAX_SUBJECTS: Final = 4096


def _subject(item: Item) -> bytes:
    # A relay sends few distinct (kind, tenant, name) triples over and over: two
    # regex substitutions per message were a tenth of its CPU. Bounded: a flood
    # of distinct names only empties the cache.
    triple = (item.kind, item.tenant, item.name)
    found = _SUBJECTS.get(triple)
    if found is None:
        if len(_SUBJECTS) >= _MAX_SUBJECTS:
            _SUBJECTS.clear()
        found = _SUBJECTS[triple] = subject(item).encode()
    return found


def msg_id(item: Item) -> str:
    if item.kind == "alert" or not item.tenant:
        return item.key
    return f"{item.tenant}/{item.key}"


def _position(text: str | None) -> Position:
    if not text:
        return ORIGIN
    xid, _, seq = text.partition(".")
    return Position(int(xid), int(seq))


class JetStreamSink:
    """One destination's stream; see the module docstring."""

    def __init__(
        self,
        servers: Sequence[str],
        stream: str,
        *,
        replicas: int = 1,
        duplicate_window: float = 120.0,
        connect: dict[str, Any] | None = None,
    ) -> None:
        self.servers = list(servers)
        self.stream = stream
        self._replicas = replicas
        self._window = duplicate_window
        self._connect = connect or {}
        self._nc: NATS | None = None
        self._inbox: _Replies | None = None
        self._synced = False
        self._last_seq = 0
        self._delivered: dict[str, Position] = {"event": ORIGIN, "alert": ORIGIN}

    async def start(self) -> None:
        try:
            if self._nc is None:
                self._nc = await nats.connect(
                    self.servers,
                    connect_timeout=2,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    allow_reconnect=True,
                    **self._connect,
                )
            js = self._nc.jetstream()
            try:
                await js.stream_info(self.stream)
            except nats.js.errors.NotFoundError:
                await js.add_stream(
                    StreamConfig(
                        name=self.stream,
                        subjects=list(SUBJECTS),
                        storage=StorageType.FILE,
                        num_replicas=self._replicas,
                        duplicate_window=self._window,
                    )
                )
                log.info("created JetStream stream", extra={"stream": self.stream})
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            raise Retryable(f"JetStream at {self._where()}: {_describe(exc)}") from exc
        self._synced = False

    def _where(self) -> str:
        return ",".join(_UNSAFE_SERVER.sub("", s) for s in self.servers)

    async def _sync(self) -> None:
        """Learn from the stream's last message what it holds already."""
        assert self._nc is not None  # noqa: S101 - start() ran
        js = self._nc.jetstream()
        info = await js.stream_info(self.stream)
        last = int(info.state.last_seq or 0)
        delivered = {"event": ORIGIN, "alert": ORIGIN}
        if last and int(info.state.messages or 0):
            try:
                msg = await js.get_msg(self.stream, seq=last)
            except nats.js.errors.NotFoundError:
                msg = None  # deleted: nothing to learn, the relay's position stands
            headers = (msg.headers or {}) if msg is not None else {}
            if msg is not None and _HEADER["event"] not in headers:
                raise Retryable(
                    f"stream {self.stream} holds messages eventwire did not publish; a "
                    "destination's stream must be its own"
                )
            for kind, name in _HEADER.items():
                delivered[kind] = _position(headers.get(name))
        self._last_seq = last
        self._delivered = delivered
        self._synced = True

    async def deliver(self, batch: Sequence[Item], *, timeout: float) -> None:
        await self._deliver(batch, timeout, again=False)

    async def redeliver(self, batch: Sequence[Item], *, timeout: float) -> None:
        """Publish ``batch`` even though the stream's tail is past it (dead letters
        retried): appended after what the stream holds, the tail's positions kept,
        so the relay's exactly-once bookkeeping is untouched."""
        await self._deliver(batch, timeout, again=True)

    async def _deliver(self, batch: Sequence[Item], timeout: float, *, again: bool) -> None:
        if self._nc is None:
            await self.start()
        nc = self._nc
        assert nc is not None  # noqa: S101 - start() connected
        try:
            async with asyncio.timeout(timeout):
                if not self._synced:
                    await self._sync()
                await self._publish(nc, batch, again=again)
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            self._synced = False
            if isinstance(exc, nats.js.errors.APIError) and _too_big(exc):
                raise Rejected(f"JetStream refused a message: {_describe(exc)}") from exc
            raise Retryable(f"JetStream: {_describe(exc)}") from exc
        except BaseException:
            self._synced = False
            raise

    async def _publish(self, nc: NATS, batch: Sequence[Item], *, again: bool = False) -> None:
        replies = await self._replies(nc)
        delivered = dict(self._delivered)
        expected = self._last_seq
        frames: list[tuple[bytes, bytes, bytes]] = []
        for item in batch:
            place = (item.xid, item.position)
            if place <= delivered[item.kind]:
                if not again:
                    continue  # the stream has it (read from its tail)
            else:
                delivered[item.kind] = Position(*place)
            events, alerts = delivered["event"], delivered["alert"]
            headers = _HEADERS % (
                _value(msg_id(item)),
                expected,
                events.xid,
                events.seq,
                alerts.xid,
                alerts.seq,
            )
            frames.append((_subject(item), headers, item.payload))
            expected += 1
        # Chunks of CHUNK messages, WINDOW of them unacknowledged at once: the
        # next chunk is on the wire while JetStream stores the last one. One
        # chunk of 2,000 ran ten times slower than 500 (bench/notes.md).
        pending: list[asyncio.Future[None]] = []
        try:
            for start in range(0, len(frames), CHUNK):
                if len(pending) >= WINDOW:
                    await pending.pop(0)
                pending.append(await replies.send(frames[start : start + CHUNK]))
            for chunk in pending:
                await chunk
        finally:
            for chunk in pending:
                chunk.cancel()
        self._delivered = delivered
        self._last_seq = expected

    async def _replies(self, nc: NATS) -> _Replies:
        if self._inbox is None or self._inbox.nc is not nc:
            self._inbox = await _Replies.open(nc)
        return self._inbox

    async def close(self) -> None:
        nc, self._nc, self._inbox = self._nc, None, None
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()


_HEADERS: Final = (
    b"NATS/1.0\r\nNats-Msg-Id: %b\r\nNats-Expected-Last-Sequence: %d\r\n"
    b"Eventwire-Events: %d.%d\r\nEventwire-Alerts: %d.%d\r\n\r\n"
)
_NEWLINES: Final = re.compile(r"[\r\n]")


def _value(text: str) -> bytes:
    if "\r" in text or "\n" in text:
        text = _NEWLINES.sub(" ", text)
    return text.encode()


class _Replies:
    """A page of publishes written in one go, their acknowledgements on one inbox.

    nats-py's ``publish`` builds each message's headers in Python (most of the
    relay's CPU when measured) and its ``publish_async`` raises a JetStream
    error inside its reply callback instead of failing the publish, so a
    refused message would only ever time out. A chunk here is one write of
    ``HPUB`` frames; its acknowledgements are counted as they come, and the
    chunk fails with the first refusal in publish order.
    """

    def __init__(self, nc: NATS, prefix: str) -> None:
        self.nc = nc
        self._prefix = prefix
        self._numbers = itertools.count()
        self._pages: dict[str, _Page] = {}

    @classmethod
    async def open(cls, nc: NATS) -> _Replies:
        replies = cls(nc, nc.new_inbox())
        await nc.subscribe(f"{replies._prefix}.*.*", cb=replies._reply)
        return replies

    async def send(self, frames: Sequence[tuple[bytes, bytes, bytes]]) -> asyncio.Future[None]:
        """Write ``frames``; the future resolves once every one was acknowledged."""
        if not self.nc.is_connected:
            raise nats.errors.ConnectionReconnectingError
        page = _Page(str(next(self._numbers)), len(frames))
        self._pages[page.number] = page
        page.done.add_done_callback(lambda _: self._pages.pop(page.number, None))
        reply = f"{self._prefix}.{page.number}".encode()
        data = b"".join(
            b"HPUB %b %b.%d %d %d\r\n%b%b\r\n"
            % (subj, reply, i, len(hdr), len(hdr) + len(payload), hdr, payload)
            for i, (subj, hdr, payload) in enumerate(frames)
        )
        # nats-py's own write path (private): what publish() ends in, minus the
        # per-message header building; it reconnects and flushes as usual.
        await self.nc._send_command(data)
        await self.nc._flush_pending()
        return page.done

    async def _reply(self, msg: Msg) -> None:
        _, number, index = msg.subject.rsplit(".", 2)
        page = self._pages.get(number)
        if page is None:
            return  # a late reply to a chunk given up on
        if msg.headers and msg.headers.get("Status") == "503":
            page.failed(int(index), nats.errors.NoRespondersError())
            return
        try:
            reply: dict[str, Any] = orjson.loads(msg.data)
        except orjson.JSONDecodeError:
            page.failed(int(index), nats.js.errors.Error("unreadable acknowledgement"))
            return
        error = reply.get("error")
        if error:
            page.failed(
                int(index),
                nats.js.errors.APIError(
                    code=error.get("code"),
                    err_code=error.get("err_code"),
                    description=error.get("description"),
                ),
            )
        elif reply.get("duplicate"):
            # Within the window a resend is dropped and the stream's sequence
            # does not move: ours no longer match it.
            page.failed(int(index), nats.js.errors.Error("a duplicate; re-reading the tail"))
        else:
            page.acked()


class _Page:
    def __init__(self, number: str, size: int) -> None:
        self.number = number
        self.left = size
        self.errors: dict[int, Exception] = {}
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def acked(self) -> None:
        self.left -= 1
        self._settle()

    def failed(self, index: int, error: Exception) -> None:
        self.errors[index] = error
        self.left -= 1
        self._settle()

    def _settle(self) -> None:
        if self.left > 0 or self.done.done():
            return
        if self.errors:
            self.done.set_exception(self.errors[min(self.errors)])
        else:
            self.done.set_result(None)


_UNSAFE_SERVER: Final = re.compile(r"//[^@/]*@")
"""Credentials in a server URL, left out of messages."""


def _too_big(exc: nats.js.errors.APIError) -> bool:
    """The one refusal that retrying cannot fix: the message exceeds the stream's
    (or the server's) maximum size."""
    return exc.err_code == _TOO_BIG or "exceeds maximum" in (exc.description or "").lower()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, nats.js.errors.APIError):
        if exc.err_code == _WRONG_SEQUENCE:
            return "the stream moved under us (another publisher?); re-reading its tail"
        return f"{exc.description or 'error'} (code {exc.code}, err_code {exc.err_code})"
    if isinstance(exc, nats.errors.NoRespondersError | nats.js.errors.NoStreamResponseError):
        return "no responders (JetStream not available for this stream)"
    if isinstance(exc, TimeoutError | nats.errors.TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__
