"""The gateway's read routes: query parameters in, JSON, Server-Sent Events or NDJSON out.

* ``GET /v1/alerts``: ListAlerts, a JSON page;
* ``GET /v1/alerts:watch``: WatchAlerts as Server-Sent Events, one ``alert``
  event per alert with its cursor as the event id, so a browser's
  ``EventSource`` resumes by itself (``Last-Event-ID`` wins over ``after``);
* ``GET /v1/events:query``: QueryEvents, JSON;
* ``GET /v1/events:export``: ExportEvents as NDJSON, one ExportedEvent a line.

Query parameters are the request message's fields, by proto or JSON name; the
parser is derived from the descriptor. A stream's errors before its first byte
are ordinary error replies; later ones end it with an SSE ``error`` event or a
last NDJSON line ``{"error": {...}}`` carrying the same google.rpc.Status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any, Final, NamedTuple, TypeVar
from urllib.parse import parse_qsl

import orjson
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from eventwire._errors import Code, FieldViolation, InvalidArgument, internal_message, is_public
from eventwire.api import analytics_pb2, telemetry_pb2
from eventwire.frontends.http.errors import HttpError, from_service_error, status_body
from eventwire.frontends.http.messages import INT32_MAX, INT32_MIN, INT64_MAX, INT64_MIN
from eventwire.observability.logs import current_request_id, new_request_id
from eventwire.reads.limits import ReaderTooSlow, ReadLimits
from eventwire.reads.service import ReadService
from eventwire.security.auth import current_tenant
from eventwire.security.limits import cost_of

log = logging.getLogger("eventwire.gateway")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
M = TypeVar("M", bound=Message)

HEARTBEAT_SECONDS: Final = 15.0
"""An SSE comment this often keeps idle proxies from closing a quiet watch."""
SSE: Final = b"text/event-stream"
NDJSON: Final = b"application/x-ndjson"
LAST_EVENT_ID: Final = "Last-Event-ID"
"""The SSE resume header, as violations name it when its cursor is refused."""
_INT: Final = re.compile(r"-?[0-9]{1,19}")
_TRUE: Final = frozenset({"true", "1"})
_FALSE: Final = frozenset({"false", "0"})
_RANGES: Final = {
    FieldDescriptor.TYPE_INT32: (INT32_MIN, INT32_MAX),
    FieldDescriptor.TYPE_INT64: (INT64_MIN, INT64_MAX),
}


class Stream:
    """A streamed reply: its media type and its chunks (not started until iterated).

    Each chunk comes with the cursor a client resumes from once it has read
    it ("" when the chunk moves no position); ``too_slow`` renders the last
    chunk of a client cut off for not reading (see :func:`send_stream`).
    """

    def __init__(
        self,
        media_type: bytes,
        chunks: AsyncGenerator[tuple[bytes, str], None],
        limits: ReadLimits | None = None,
    ) -> None:
        self.media_type = media_type
        self.chunks = chunks
        self.limits = limits or ReadLimits()

    def too_slow(self, cursor: str) -> bytes:
        err = ReaderTooSlow(cursor, self.limits)
        status = status_body(Code.RESOURCE_EXHAUSTED, str(err))
        if self.media_type == SSE:
            # With the cursor as its id, an EventSource reconnects from there by itself.
            return b"id: %s\nevent: error\ndata: %s\n\n" % (cursor.encode(), status)
        return b'{"error":%s,"cursor":%s}\n' % (status, orjson.dumps(cursor))


def _parse_value(field: Any, value: str) -> object:
    """One query parameter as ``field``'s type; ValueError with the reason otherwise."""
    if field.enum_type is not None:
        if value in field.enum_type.values_by_name:
            return value
        if _INT.fullmatch(value) and INT32_MIN <= int(value) <= INT32_MAX:
            return int(value)
        names = ", ".join(field.enum_type.values_by_name)
        raise ValueError(f"must be one of {names} (or its number), got {value!r}")
    if field.type == FieldDescriptor.TYPE_BOOL:
        lowered = value.lower()
        if lowered in _TRUE | _FALSE:
            return lowered in _TRUE
        raise ValueError(f"must be true or false, got {value!r}")
    if field.type in _RANGES:
        low, high = _RANGES[field.type]
        if not _INT.fullmatch(value) or not low <= int(value) <= high:
            bits = 32 if field.type == FieldDescriptor.TYPE_INT32 else 64
            raise ValueError(f"must be a {bits}-bit integer, got {value!r}")
        return int(value)
    return value


def request_from_query(scope: Scope, message: M) -> M:
    """``message`` filled from the query string; 400 naming every bad parameter."""
    by_name = {n: f for f in message.DESCRIPTOR.fields for n in (f.name, f.json_name)}
    raw: bytes = scope["query_string"]
    try:
        pairs = parse_qsl(raw.decode(), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise HttpError(400, "query string is not valid percent-encoded UTF-8") from None
    fields: dict[str, object] = {}
    violations: list[FieldViolation] = []
    for key, value in pairs:
        field = by_name.get(key)
        if field is None:
            violations.append(FieldViolation(key, "unknown query parameter"))
        elif field.name in fields:
            violations.append(FieldViolation(field.name, "must be given at most once"))
        else:
            try:
                fields[field.name] = _parse_value(field, value)
            except ValueError as exc:
                violations.append(FieldViolation(field.name, str(exc)))
    if violations:
        raise HttpError(
            400,
            f"invalid {violations[0].field}: {violations[0].description}",
            violations=violations,
        )
    try:
        json_format.ParseDict(fields, message)
    except json_format.ParseError as exc:  # pragma: no cover - values were checked above
        raise HttpError(400, str(exc).split("\n", 1)[0]) from None
    return message


def _json(message: Message) -> bytes:
    return orjson.dumps(
        json_format.MessageToDict(message, always_print_fields_with_no_presence=True)
    )


def _error_status(err: BaseException) -> bytes:
    if is_public(err):
        rendered = from_service_error(err)
        return status_body(rendered.code, rendered.message, rendered.violations)
    request_id = current_request_id() or new_request_id()
    log.error("unexpected error in a read stream", exc_info=err, extra={"request_id": request_id})
    return status_body(Code.INTERNAL, internal_message(request_id))


async def _sse(
    alerts: AsyncIterator[telemetry_pb2.Alert],
) -> AsyncGenerator[tuple[bytes, str], None]:
    try:
        async for alert in alerts:
            cursor = alert.cursor.encode()
            yield b"id: %s\nevent: alert\ndata: %s\n\n" % (cursor, _json(alert)), alert.cursor
    except Exception as exc:  # noqa: BLE001 - rendered as the stream's last event
        yield b"event: error\ndata: %s\n\n" % _error_status(exc), ""


class Line(NamedTuple):
    """A line an NDJSON stream sends as it is (a JSON object, no newline), and the
    cursor a client resumes from once it has read it ("" for none)."""

    body: bytes
    cursor: str


async def _ndjson(
    events: AsyncIterator[analytics_pb2.ExportedEvent | Line],
) -> AsyncGenerator[tuple[bytes, str], None]:
    try:
        async for event in events:
            if isinstance(event, Line):
                yield event.body + b"\n", event.cursor
            else:
                yield _json(event) + b"\n", event.cursor
    except Exception as exc:  # noqa: BLE001 - rendered as the stream's last line
        yield b'{"error":%s}\n' % _error_status(exc), ""


class ReadRoutes:
    """The handlers; each returns a JSON body (bytes) or a :class:`Stream`."""

    def __init__(self, reads: ReadService, charge: Callable[[int], None]) -> None:
        self._reads = reads
        self._charge = charge

    async def list_alerts(self, scope: Scope) -> bytes:
        req = request_from_query(scope, telemetry_pb2.ListAlertsRequest())
        self._charge(cost_of(req))
        return _json(await self._reads.list_alerts(req, current_tenant()))

    async def watch_alerts(self, scope: Scope) -> Stream:
        req = request_from_query(scope, telemetry_pb2.WatchAlertsRequest())
        header = False
        for name, value in scope["headers"]:
            if name == b"last-event-id" and value:
                # EventSource reconnects with the URL it started from: the
                # last id it saw is the newer position.
                req.after = value.decode("latin-1")
                req.from_start = False
                header = True
        self._charge(cost_of(req))
        try:
            alerts = await self._reads.watch_alerts(req, current_tenant())
        except InvalidArgument as err:
            if not header:
                raise
            # The client sent no after: name what it did send.
            raise InvalidArgument(
                [
                    FieldViolation(LAST_EVENT_ID, v.description) if v.field == "after" else v
                    for v in err.violations
                ]
            ) from None
        return Stream(SSE, _sse(alerts), self._reads.limits)

    async def query_events(self, scope: Scope) -> bytes:
        req = request_from_query(scope, analytics_pb2.QueryEventsRequest())
        self._charge(cost_of(req))
        return _json(await self._reads.query_events(req, current_tenant()))

    async def export_events(self, scope: Scope) -> Stream:
        req = request_from_query(scope, analytics_pb2.ExportEventsRequest())
        self._charge(cost_of(req))
        events = await self._reads.export_events(req, current_tenant())
        return ndjson_stream(events, self._reads.limits)


def ndjson_stream(
    events: AsyncIterator[analytics_pb2.ExportedEvent | Line], limits: ReadLimits
) -> Stream:
    """``events`` as NDJSON, one ExportedEvent (or :class:`Line`) a line; an error
    ends it with a last ``{"error": ...}``."""
    return Stream(NDJSON, _ndjson(events), limits)


def _start(stream: Stream, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http.response.start",
        "status": 200,
        "headers": [
            (b"content-type", stream.media_type),
            (b"cache-control", b"no-store"),
            # Proxies (nginx) must pass each event on at once.
            (b"x-accel-buffering", b"no"),
            *headers,
        ],
    }


async def send_stream_head(stream: Stream, send: Send, headers: list[tuple[bytes, bytes]]) -> None:
    """Answer HEAD: the headers GET would send, and no body.

    The request was checked (a bad one is an error reply like GET's) but the
    stream is closed unstarted: a watch or a followed export never ends, so
    running it for a reply nobody reads would hold the connection forever.
    """
    await stream.chunks.aclose()
    await send(_start(stream, headers))
    await send({"type": "http.response.body", "body": b"", "more_body": False})


class _Buffer:
    """Chunks on their way to one client, bounded in bytes rather than in chunks."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._chunks: deque[bytes | None] = deque()
        self._bytes = 0
        self._space = asyncio.Event()
        self._data = asyncio.Event()

    async def put(self, chunk: bytes, patience: float) -> bool:
        """Queue ``chunk`` once there is room; False if none came within ``patience`` s."""
        deadline = time.monotonic() + patience
        while self._bytes >= self._limit:
            self._space.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._space.wait(), left)
        self.end(chunk)
        return True

    def end(self, chunk: bytes | None) -> None:
        """Queue ``chunk`` whatever the room (the small last ones), None for the end."""
        self._chunks.append(chunk)
        self._bytes += len(chunk or b"")
        self._data.set()

    async def get(self) -> bytes | None:
        while not self._chunks:
            self._data.clear()
            await self._data.wait()
        chunk = self._chunks.popleft()
        self._bytes -= len(chunk or b"")
        self._space.set()
        return chunk


async def send_stream(
    stream: Stream, send: Send, receive: Receive, headers: list[tuple[bytes, bytes]]
) -> None:
    """Send ``stream`` until it ends or the client goes away (then it is closed).

    At most ``stream_buffer_bytes`` wait for the client beyond what the
    transport holds. A client that leaves them waiting for
    ``stream_stall_timeout`` seconds gets, after them, a last event (or line)
    with RESOURCE_EXHAUSTED and the cursor of the last chunk before it, and
    the reply ends: the stream's reads stop, nothing more is held for it.
    """
    await send(_start(stream, headers))
    limits = stream.limits
    buffer = _Buffer(limits.stream_buffer_bytes)

    async def produce() -> None:
        cursor = ""
        cut = False
        async for chunk, position in stream.chunks:
            if not await buffer.put(chunk, limits.stream_stall_seconds):
                cut = True
                break
            cursor = position or cursor
        if cut:
            await stream.chunks.aclose()
            log.info(
                "a streaming reply's client read nothing for %g s; told to resume from its "
                "cursor and disconnected",
                limits.stream_stall_seconds,
                extra={"request_id": current_request_id()},
            )
            buffer.end(stream.too_slow(cursor))
        buffer.end(None)

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    producer = asyncio.ensure_future(produce())
    gone = asyncio.ensure_future(disconnected())
    heartbeat = b": keep-alive\n\n" if stream.media_type == SSE else b""
    try:
        while True:
            get = asyncio.ensure_future(buffer.get())
            done, _ = await asyncio.wait(
                {get, gone}, timeout=HEARTBEAT_SECONDS, return_when=asyncio.FIRST_COMPLETED
            )
            if get not in done:
                get.cancel()
                if gone in done:
                    return
                if heartbeat:
                    await send({"type": "http.response.body", "body": heartbeat, "more_body": True})
                continue
            chunk = get.result()
            if chunk is None:
                break
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        for task in (producer, gone):
            task.cancel()
        await asyncio.gather(producer, gone, return_exceptions=True)
        await stream.chunks.aclose()
