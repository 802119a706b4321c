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
import json
import logging
import re
from collections.abc import Sequence
from typing import Any, Final

import nats
import nats.errors
import nats.js.errors
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
_HEADER: Final = {"event": "Eventwire-Events", "alert": "Eventwire-Alerts"}


def token(text: str) -> str:
    """``text`` as one subject token."""
    return _UNSAFE.sub("_", text) or "_"


def subject(item: Item) -> str:
    kind = "events" if item.kind == "event" else "alerts"
    return f"{PREFIX}.{kind}.{token(item.tenant)}.{token(item.name)}"


def msg_id(item: Item) -> str:
    if item.kind == "alert" or not item.tenant:
        return item.key
    return f"{item.tenant}/{item.key}"


def _text(position: Position) -> str:
    return f"{position.xid}.{position.seq}"


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
        if self._nc is None:
            await self.start()
        nc = self._nc
        assert nc is not None  # noqa: S101 - start() connected
        try:
            async with asyncio.timeout(timeout):
                if not self._synced:
                    await self._sync()
                await self._publish(nc, batch)
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            self._synced = False
            if isinstance(exc, nats.js.errors.APIError) and _too_big(exc):
                raise Rejected(f"JetStream refused a message: {_describe(exc)}") from exc
            raise Retryable(f"JetStream: {_describe(exc)}") from exc
        except BaseException:
            self._synced = False
            raise

    async def _publish(self, nc: NATS, batch: Sequence[Item]) -> None:
        replies = await self._replies(nc)
        delivered = dict(self._delivered)
        expected = self._last_seq
        acks: list[asyncio.Future[dict[str, Any]]] = []
        try:
            for item in batch:
                if item.place <= delivered[item.kind]:
                    continue  # the stream has it (read from its tail)
                delivered[item.kind] = item.place
                headers = {
                    "Nats-Msg-Id": msg_id(item),
                    "Nats-Expected-Last-Sequence": str(expected),
                    "Eventwire-Events": _text(delivered["event"]),
                    "Eventwire-Alerts": _text(delivered["alert"]),
                }
                expected += 1
                acks.append(await replies.publish(subject(item), item.payload, headers))
            for ack in acks:
                result = await ack
                if result.get("duplicate"):
                    # Within the window a resend is dropped and the sequence
                    # does not move: ours no longer match the stream's.
                    raise nats.js.errors.Error("a message was a duplicate; re-reading the tail")
        finally:
            for ack in acks:
                ack.cancel()
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


class _Replies:
    """Publishes whose acknowledgements arrive on one inbox, matched by token.

    nats-py's own ``publish_async`` raises a JetStream error inside its reply
    callback instead of failing the publish's future, so a refused message
    (wrong expected sequence, too big, storage full) would only ever time out.
    """

    def __init__(self, nc: NATS, prefix: str) -> None:
        self.nc = nc
        self._prefix = prefix
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tokens = itertools.count()

    @classmethod
    async def open(cls, nc: NATS) -> _Replies:
        replies = cls(nc, nc.new_inbox())
        await nc.subscribe(f"{replies._prefix}.*", cb=replies._reply)
        return replies

    async def publish(
        self, subject: str, payload: bytes, headers: dict[str, str]
    ) -> asyncio.Future[dict[str, Any]]:
        token = str(next(self._tokens))
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[token] = future
        future.add_done_callback(lambda _: self._waiting.pop(token, None))
        await self.nc.publish(subject, payload, reply=f"{self._prefix}.{token}", headers=headers)
        return future

    async def _reply(self, msg: Msg) -> None:
        future = self._waiting.get(msg.subject.rpartition(".")[2])
        if future is None or future.done():
            return
        if msg.headers and msg.headers.get("Status") == "503":
            future.set_exception(nats.errors.NoRespondersError())
            return
        try:
            reply: dict[str, Any] = json.loads(msg.data)
        except ValueError:
            future.set_exception(nats.js.errors.Error("unreadable acknowledgement"))
            return
        error = reply.get("error")
        if error:
            future.set_exception(
                nats.js.errors.APIError(
                    code=error.get("code"),
                    err_code=error.get("err_code"),
                    description=error.get("description"),
                )
            )
        else:
            future.set_result(reply)


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
