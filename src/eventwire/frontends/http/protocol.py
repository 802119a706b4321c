"""uvicorn's httptools protocol with the limits a server facing hostile clients needs.

uvicorn bounds none of these with httptools: the request head may grow without
limit (and httptools joins a header's pieces by concatenation, so a 64 MiB
header costs quadratic time with the event loop held), a connection that sends
nothing or half a head is kept forever (slowloris), there is no cap on open
connections, and a response sent before the request body was read is followed
by a close that the kernel turns into a TCP reset (the client often never sees
the response). Here each connection moves through four states::

    IDLE --first byte--> HEAD --head complete--> BODY --body complete--> BUSY
      ^                                                                   |
      +-------------------------- response sent --------------------------+

and each state but BUSY (the application's turn) has a clock: ``idle_timeout``
in IDLE (closed quietly: nothing was asked), ``header_timeout`` for the whole
head, ``body_timeout`` of silence while a body is incomplete (both answered
``408``). A head above ``max_header_bytes`` is answered ``431``, a declared
body above ``max_body_bytes`` ``413`` before any of it is read, a connection
beyond ``max_connections`` ``503``, a transfer coding other than plain
``chunked`` ``501``: JSON ``google.rpc.Status`` bodies like
every other error of the gateway, then a lingering close (half-close, read
and discard for a moment, then close) so the client reads the answer instead
of a reset.

The application may answer before it has read the request body (a 401, 404,
415...). A connection closed after such an answer without ``connection:
close`` in it races the client, which may already be sending its next request
on it and then reads a disconnect instead of an answer. So which it will be is
settled before the answer: a body of at most :data:`DRAIN_BYTES` whose sender
is not waiting for ``100 Continue`` keeps the connection, and is read and
dropped after the answer (``body_timeout`` still applies); any other body
makes the answer say ``connection: close`` unless it has all arrived by the
time the answer starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Final

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from eventwire.frontends.http.errors import HTTP_ONLY, status_body
from eventwire.frontends.http.limits import Handshakes, HttpLimits, Refusals
from eventwire.frontends.http.lingering import LingeringTransport

log = logging.getLogger("eventwire.gateway")

_IDLE: Final = 0
_HEAD: Final = 1
_BODY: Final = 2
_BUSY: Final = 3

LINGER_QUIET: Final = 2.0
"""Lingering close ends after this many seconds without data from the client..."""
LINGER_MAX: Final = 10.0
"""...or this many seconds after it began (nginx: 5 s and 30 s)...
"""
LINGER_BYTES: Final = 1 << 20
"""...or once this much was dropped; for a 413, once the declared body was (at most
:data:`LINGER_BODY_BYTES`), so that a client that sends it all before reading
reads the 413 rather than a reset."""
LINGER_BODY_BYTES: Final = 64 << 20
DRAIN_BYTES: Final = 256 << 10
"""A request body of at most this many bytes (declared) is read and dropped after
an answer sent before it was read, keeping the connection (Go's net/http: 256 KiB)."""


class _Refused(Exception):
    """Raised in a parser callback to stop parsing a request that was refused."""


class GuardedHttpProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` under :class:`HttpLimits` (pass it with ``functools.partial``).

    ``refused`` is called with a short reason (``"connections"``,
    ``"header_bytes"``, ``"header_timeout"``, ``"body_timeout"``,
    ``"body_bytes"``, ``"transfer_encoding"``) for each refusal, for metrics.
    """

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        limits: HttpLimits,
        refusals: Refusals,
        refused: Callable[[str], None] | None = None,
        handshakes: Handshakes | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._handshakes = handshakes
        if handshakes is not None:
            handshakes.begin(self)  # made at acceptance, before the TLS handshake
        self._limits = limits
        self._refusals = refusals
        self._over_cap = False
        self._refused = refused
        self._raw: asyncio.Transport | None = None
        self._state = _IDLE
        self._head_bytes = 0
        self._timer: asyncio.TimerHandle | None = None
        self._lingering = False
        self._linger_ends = 0.0
        self._linger_bytes = 0
        self._keep_alive_after_body = False
        self._draining = False

    @property
    def lingering(self) -> bool:
        """Closing: what the client still sends is read and dropped."""
        return self._lingering

    # -- connection ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._raw = transport
        handshaking = 0
        if self._handshakes is not None:
            self._handshakes.end(self)
            handshaking = len(self._handshakes)
        if len(self.connections) + handshaking >= self._limits.max_connections:
            # Not added to the connections, so refusals never count against the cap.
            self.transport = transport
            self._over_cap = self._refusals.lingering < self._refusals.budget
            if self._over_cap:
                self._refusals.lingering += 1
            else:
                transport.pause_reading()  # closed right after the refusal is written
            self._refuse(
                "connections",
                503,
                f"too many connections (at most {self._limits.max_connections}); retry later",
                extra=b"retry-after: 1\r\n",
            )
            return
        super().connection_made(LingeringTransport(transport, self))  # type: ignore[arg-type]
        self._arm(self._limits.idle_timeout, self._idle_expired)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        if self._over_cap:
            self._refusals.lingering -= 1
            self._over_cap = False
        super().connection_lost(exc)

    def close_transport(self) -> None:
        """What uvicorn's ``transport.close()`` does here: close, or linger if the
        client may still be sending the request a response was sent for."""
        if self._state in (_HEAD, _BODY):
            self._linger()
        elif self._raw is not None:
            self._raw.close()

    # -- reading ---------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            self._discard(len(data))
            return
        self._unset_keepalive_if_required()
        limit = self._limits.max_header_bytes
        while data:
            if self._state == _IDLE:
                self._state = _HEAD
                self._head_bytes = 0
                self._arm(self._limits.header_timeout, self._head_expired)
            if self._state != _HEAD:
                if self._state == _BODY:
                    self._arm(self._limits.body_timeout, self._body_expired)
                self._feed(data)
                return
            # Feed the head no further than the limit, so that no more than
            # ``limit`` bytes of it are ever held or parsed.
            piece = data[: limit - self._head_bytes]
            data = data[len(piece) :]
            self._head_bytes += len(piece)
            if not self._feed(piece):
                return
            if self._state == _HEAD and self._head_bytes >= limit:
                self._refuse(
                    "header_bytes",
                    431,
                    f"request line and headers exceed {limit} bytes",
                )
                return

    def _feed(self, data: bytes) -> bool:
        """Parse ``data``; False when the connection is done with (refused or bad)."""
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._unsupported_upgrade_warning()
        except httptools.HttpParserError:
            if not self._lingering:  # not our own refusal: the request is malformed
                self._state = _BUSY
                self._cancel()
                self.send_400_response("Invalid HTTP request received.")
            return False
        return not self._lingering and not self.transport.is_closing()

    # -- parser callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._state in (_IDLE, _BUSY):  # a pipelined request: its bytes were fed whole
            self._state = _HEAD

    def on_headers_complete(self) -> None:
        declared = -1
        codings: list[bytes] = []
        for name, value in self.headers:
            if name == b"content-length" and value.isdigit():
                declared = int(value)
            elif name == b"transfer-encoding":
                codings.append(value)
        if codings and (len(codings) != 1 or codings[0].strip().lower() != b"chunked"):
            # The parser undoes the chunking and nothing else: a body that is
            # also gzip'd (say) would reach the application still encoded.
            self._refuse(
                "transfer_encoding",
                501,
                "transfer-encoding other than plain chunked is not supported; "
                "send the body as is, chunked or with a content-length",
            )
            raise _Refused
        if declared > self._limits.max_body_bytes:
            self._refuse(
                "body_bytes",
                413,
                f"request body of {declared} bytes exceeds the limit of "
                f"{self._limits.max_body_bytes} bytes; split it into smaller requests",
                linger_bytes=min(declared, LINGER_BODY_BYTES),
            )
            raise _Refused
        self._state = _BODY
        self._arm(self._limits.body_timeout, self._body_expired)
        super().on_headers_complete()
        if self.cycle.keep_alive and not self._drainable(declared, chunked=bool(codings)):
            # Until the body has all arrived, an answer says ``connection: close``
            # (uvicorn adds it when keep_alive is off) and closes: see the module docstring.
            self.cycle.keep_alive = False
            self._keep_alive_after_body = True

    def _drainable(self, declared: int, *, chunked: bool) -> bool:
        """Whether a body declared this long (or chunked) can be read after an early answer."""
        return not chunked and declared <= DRAIN_BYTES and not self.expect_100_continue

    def on_message_complete(self) -> None:
        self._state = _BUSY
        self._cancel()
        if self._keep_alive_after_body:
            self._keep_alive_after_body = False
            if not self.cycle.response_started:  # else the answer already said close
                self.cycle.keep_alive = True
        super().on_message_complete()
        if self._draining:  # the rest of a body answered early is read: serve on
            self._draining = False
            self.on_response_complete()

    def shutdown(self) -> None:
        self._keep_alive_after_body = False  # shutting down: every answer from now on closes
        super().shutdown()

    def on_response_complete(self) -> None:
        if self._lingering:
            super().on_response_complete()  # counts it, serves nothing more
            return
        queued = bool(self.pipeline)  # a pipelined request, already parsed, is next
        if self._state == _BODY and not queued:
            # Answered before the body was read, keeping the connection (else
            # uvicorn closed it: we linger): read and drop the rest of the body,
            # then serve the next request from on_message_complete.
            self._draining = True
            self.flow.resume_reading()
            return
        if self._state == _BUSY and not queued:
            self._state = _IDLE
        super().on_response_complete()
        if self._state == _IDLE and not self.transport.is_closing():
            self._unset_keepalive_if_required()  # ours instead, so all timers are in one place
            self._arm(self._limits.idle_timeout, self._idle_expired)

    # -- clocks ----------------------------------------------------------------------

    def _arm(self, seconds: float, expired: Callable[[], None]) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_later(seconds, expired)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _idle_expired(self) -> None:
        if self._state == _IDLE and self._raw is not None:
            self._raw.close()

    def _head_expired(self) -> None:
        if self._state == _HEAD:
            self._refuse(
                "header_timeout",
                408,
                f"request line and headers not received within {self._limits.header_timeout:g} s",
            )

    def _body_expired(self) -> None:
        if self._state != _BODY:
            return
        if self.cycle is not None and self.cycle.response_started:
            self._linger()  # too late for a status: the response is under way
            return
        if self.cycle is not None:
            self.cycle.disconnected = True  # the application reads a disconnect, sends nothing
            self.cycle.message_event.set()
        self._refuse(
            "body_timeout",
            408,
            f"no request body data for {self._limits.body_timeout:g} s",
        )

    # -- refusing and closing --------------------------------------------------------

    def _refuse(
        self,
        reason: str,
        status: int,
        message: str,
        *,
        extra: bytes = b"",
        linger_bytes: int = LINGER_BYTES,
    ) -> None:
        if self._refused is not None:
            self._refused(reason)
        body = status_body(HTTP_ONLY[status], message)
        head = (
            STATUS_LINE[status]
            + b"content-type: application/json\r\ncontent-length: "
            + str(len(body)).encode()
            + b"\r\nconnection: close\r\n"
            + extra
            + b"\r\n"
        )
        assert self._raw is not None  # noqa: S101 - set in connection_made
        if not self._raw.is_closing():
            self._raw.write(head + body)
        if reason == "connections" and not self._over_cap:
            self._raw.close()  # over the lingering budget: see Refusals
            return
        self._linger(linger_bytes)

    def _linger(self, budget: int = LINGER_BYTES) -> None:
        """Half-close, then read and drop what the client still sends, then close."""
        raw = self._raw
        if self._lingering or raw is None or raw.is_closing():
            return
        self._lingering = True
        self._draining = False
        self._state = _BUSY
        if self.flow is not None:
            self.flow.resume_reading()
        else:
            raw.resume_reading()
        if raw.can_write_eof():
            with contextlib.suppress(OSError, RuntimeError):
                raw.write_eof()
        self._linger_ends = self.loop.time() + LINGER_MAX
        self._linger_bytes = budget
        self._arm(LINGER_QUIET, raw.close)

    def _discard(self, size: int) -> None:
        assert self._raw is not None  # noqa: S101 - lingering implies connected
        self._linger_bytes -= size
        if self._linger_bytes < 0 or self.loop.time() >= self._linger_ends:
            self._cancel()
            self._raw.close()
        else:
            self._arm(LINGER_QUIET, self._raw.close)
