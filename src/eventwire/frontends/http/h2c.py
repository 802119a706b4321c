"""HTTP/2 on the gateway's port, for clients that start with the HTTP/2 preface.

uvicorn's httptools protocol speaks HTTP/1.1 only, but some clients of the
Connect door need HTTP/2 without TLS ("prior knowledge"): ``buf curl`` on an
``http://`` URL uses it for server reflection and for every call that follows
it, and bidirectional streams need it. So a connection whose first bytes are
the HTTP/2 preface is handed to :class:`H2Session` (the ``h2`` library's state
machine, driven here), which runs the same ASGI application per stream, with
the ``http.response.trailers`` extension (gRPC's status travels in trailers).

Its limits: at most :data:`MAX_STREAMS` streams at once and the listener's
``max_header_bytes`` of headers per request (both announced in SETTINGS and
enforced by ``h2``); a request body is read only as fast as the application
takes it (flow-control credit is returned as it does), so a stream holds at
most one window; a connection idle for ``idle_timeout`` is closed with GOAWAY;
one whose client resets more streams than it lets finish (Rapid Reset,
CVE-2023-44487) is closed with ``ENHANCE_YOUR_CALM``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final
from urllib.parse import unquote

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from h2.errors import ErrorCodes

from eventwire.frontends.http.protocol import GuardedHttpProtocol

log = logging.getLogger("eventwire.gateway")

PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
MAX_STREAMS: Final = 100
_WINDOW: Final = 1 << 20
_RESETS_ALLOWED: Final = 200
"""Client resets a connection may make beyond the streams it let finish."""
_HOP_BY_HOP: Final = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"upgrade"})

App = Callable[..., Awaitable[None]]


class _Stream:
    __slots__ = (
        "chunks",
        "done",
        "ended",
        "gone",
        "id",
        "readable",
        "started",
        "task",
        "trailers",
        "writable",
    )

    def __init__(self, stream_id: int) -> None:
        self.id = stream_id
        self.chunks: deque[tuple[bytes, int]] = deque()
        self.ended = False
        self.gone = False
        self.started = False
        self.trailers = False
        self.done = False
        self.readable = asyncio.Event()
        self.writable = asyncio.Event()
        self.task: asyncio.Task[None] | None = None


class H2Session:
    """One HTTP/2 connection: frames in through :meth:`data_received`, ASGI per stream."""

    def __init__(
        self,
        transport: asyncio.Transport,
        app: App,
        *,
        max_header_bytes: int,
        idle_timeout: float,
        scheme: str,
        on_task: Callable[[asyncio.Task[None]], None],
    ) -> None:
        self._transport = transport
        self._app = app
        self._loop = asyncio.get_running_loop()
        self._idle_timeout = idle_timeout
        self._on_task = on_task
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self._h2 = h2.connection.H2Connection(config)
        self._h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: MAX_STREAMS,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: max_header_bytes,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: _WINDOW,
            },
        )
        # Announced above, enforced here: h2 applies a local setting to its header
        # decoder only when it changes after the connection started.
        self._h2.decoder.max_header_list_size = max_header_bytes
        self._h2.initiate_connection()
        self._h2.increment_flow_control_window(_WINDOW)
        self._streams: dict[int, _Stream] = {}
        self._closing = False
        self._finished = 0
        self._resets = 0
        self._timer: asyncio.TimerHandle | None = None
        sockname = transport.get_extra_info("sockname")
        peername = transport.get_extra_info("peername")
        self._base: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "2",
            "scheme": scheme,
            "server": tuple(sockname[:2]) if sockname else None,
            "client": tuple(peername[:2]) if peername else None,
            "root_path": "",
        }
        self._flush()
        self._arm()

    # -- frames in ---------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        try:
            events = self._h2.receive_data(data)
        except h2.exceptions.ProtocolError:
            self._flush()
            self._transport.close()
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                self._request(event)
            elif isinstance(event, h2.events.DataReceived):
                self._data(event)
            elif isinstance(event, h2.events.StreamEnded):
                stream = self._streams.get(event.stream_id)
                if stream is not None:
                    stream.ended = True
                    stream.readable.set()
            elif isinstance(event, h2.events.StreamReset):
                self._reset(event.stream_id)
            elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
                for stream in self._streams.values():
                    stream.writable.set()
            elif isinstance(event, h2.events.ConnectionTerminated):
                self._transport.close()
        self._flush()

    def _request(self, event: h2.events.RequestReceived) -> None:
        pseudo: dict[bytes, bytes] = {}
        headers: list[tuple[bytes, bytes]] = []
        for raw_name, raw_value in event.headers or ():
            name, value = bytes(raw_name), bytes(raw_value)
            if name.startswith(b":"):
                pseudo[name] = value
            else:
                headers.append((name, value))
        if b":authority" in pseudo:
            headers.insert(0, (b"host", pseudo[b":authority"]))
        raw_path, _, query = pseudo.get(b":path", b"/").partition(b"?")
        scope = {
            **self._base,
            "method": pseudo.get(b":method", b"GET").decode("latin-1"),
            "path": unquote(raw_path.decode("latin-1")),
            "raw_path": raw_path,
            "query_string": query,
            "headers": headers,
            "extensions": {"http.response.trailers": {}},
        }
        stream = _Stream(event.stream_id)
        self._streams[event.stream_id] = stream
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        stream.task = self._loop.create_task(self._run(stream, scope))
        self._on_task(stream.task)

    def _data(self, event: h2.events.DataReceived) -> None:
        stream = self._streams.get(event.stream_id)
        size = event.flow_controlled_length or 0
        if stream is None or stream.gone:
            # Nobody reads it: give the credit back at once.
            self._h2.acknowledge_received_data(size, event.stream_id)
            return
        stream.chunks.append((bytes(event.data or b""), size))
        stream.readable.set()

    def _reset(self, stream_id: int) -> None:
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        # Still in the table: reset before its response was complete.
        self._resets += 1
        if self._resets > self._finished + _RESETS_ALLOWED:
            log.info("HTTP/2 client reset too many streams; closing its connection")
            self._h2.close_connection(ErrorCodes.ENHANCE_YOUR_CALM)
            self._flush()
            self._transport.close()
        self._gone(stream)

    def _gone(self, stream: _Stream) -> None:
        stream.gone = True
        stream.readable.set()
        stream.writable.set()

    # -- one stream --------------------------------------------------------------

    async def _run(self, stream: _Stream, scope: MutableMapping[str, Any]) -> None:
        async def receive() -> dict[str, Any]:
            while True:
                if stream.gone:
                    return {"type": "http.disconnect"}
                if stream.chunks:
                    data, size = stream.chunks.popleft()
                    self._credit(stream, size)
                    more = bool(stream.chunks) or not stream.ended
                    return {"type": "http.request", "body": data, "more_body": more}
                if stream.ended and not stream.done:
                    stream.done = True  # the body was delivered whole, ended
                    return {"type": "http.request", "body": b"", "more_body": False}
                stream.readable.clear()
                await stream.readable.wait()

        async def send(message: MutableMapping[str, Any]) -> None:
            if stream.gone:
                return
            kind = message["type"]
            if kind == "http.response.start":
                headers = [(b":status", str(message["status"]).encode())]
                headers.extend(
                    (name.lower(), value)
                    for name, value in message.get("headers", ())
                    if name.lower() not in _HOP_BY_HOP
                )
                stream.trailers = bool(message.get("trailers", False))
                stream.started = True
                self._h2.send_headers(stream.id, headers)
                self._flush()
            elif kind == "http.response.body":
                last = not message.get("more_body", False)
                await self._write(stream, message.get("body", b""), last and not stream.trailers)
            elif kind == "http.response.trailers" and not message.get("more_trailers", False):
                trailers = [(name.lower(), value) for name, value in message.get("headers", ())]
                self._h2.send_headers(stream.id, trailers, end_stream=True)
                self._flush()

        try:
            await self._app(scope, receive, send)
        except Exception:
            log.exception("unexpected error in an HTTP/2 stream")
        finally:
            self._finish(stream)

    async def _write(self, stream: _Stream, data: bytes, end: bool) -> None:
        view = memoryview(data)
        while True:
            window = min(
                self._h2.local_flow_control_window(stream.id), self._h2.max_outbound_frame_size
            )
            if view and window <= 0:
                stream.writable.clear()
                await stream.writable.wait()
                if stream.gone:
                    return
                continue
            chunk, view = view[:window], view[window:]
            self._h2.send_data(stream.id, bytes(chunk), end_stream=end and not len(view))
            self._flush()
            if not len(view):
                return

    def _credit(self, stream: _Stream, size: int) -> None:
        if size and not stream.gone:
            self._h2.acknowledge_received_data(size, stream.id)
            self._flush()

    def _finish(self, stream: _Stream) -> None:
        self._streams.pop(stream.id, None)
        if not stream.gone:  # answered, not reset by the client
            self._finished += 1
        if not stream.gone and self._h2.state_machine.state.name != "CLOSED":
            try:
                if not stream.started:
                    self._h2.send_headers(stream.id, [(b":status", b"500")], end_stream=True)
                else:
                    # Ends the stream if the application left it open.
                    self._h2.reset_stream(stream.id, ErrorCodes.NO_ERROR)
            except h2.exceptions.H2Error:
                pass  # already closed: the ordinary case
            self._flush()
        stream.gone = True
        if not self._streams:
            if self._closing:
                self._transport.close()
            else:
                self._arm()

    # -- the connection ----------------------------------------------------------

    def _flush(self) -> None:
        data = self._h2.data_to_send()
        if data and not self._transport.is_closing():
            self._transport.write(data)

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_later(self._idle_timeout, self._idle)

    def _idle(self) -> None:
        if not self._streams:
            self.shutdown()

    def shutdown(self) -> None:
        """GOAWAY: no new streams; close once those in flight have finished."""
        if self._closing:
            return
        self._closing = True
        self._h2.close_connection()
        self._flush()
        if not self._streams:
            self._transport.close()

    def connection_lost(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for stream in list(self._streams.values()):
            self._gone(stream)


class DualProtocol(GuardedHttpProtocol):
    """:class:`GuardedHttpProtocol`, or :class:`H2Session` for a connection that
    opens with the HTTP/2 preface (pass it to uvicorn as the guarded one)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._h2s: H2Session | None = None
        self._fresh = True
        """Nothing received yet: the preface can only come first."""
        self._head = b""

    def data_received(self, data: bytes) -> None:
        if self._h2s is not None:
            self._h2s.data_received(data)
            return
        if self._fresh:
            head = self._head + data
            if PREFACE.startswith(head[: len(PREFACE)]):
                if len(head) < len(PREFACE):
                    self._head = head  # a preface split across reads: wait for the rest
                    return
                self._switch(head)
                return
            self._fresh = False
            data, self._head = head, b""
        super().data_received(data)

    def _switch(self, data: bytes) -> None:
        assert self._raw is not None  # noqa: S101 - set in connection_made
        self._cancel()  # HTTP/1.1's clocks; the session keeps its own
        tasks = self.tasks

        def track(task: asyncio.Task[None]) -> None:
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        self._h2s = H2Session(
            self._raw,
            self.app,
            max_header_bytes=self._limits.max_header_bytes,
            idle_timeout=self._limits.idle_timeout,
            scheme="https" if self._raw.get_extra_info("sslcontext") else "http",
            on_task=track,
        )
        self._h2s.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._h2s is not None:
            self._h2s.connection_lost()
        super().connection_lost(exc)

    def shutdown(self) -> None:
        if self._h2s is not None:
            self._h2s.shutdown()
            return
        super().shutdown()
