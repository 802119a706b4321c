"""The client's one exception tree. Every failure a caller can see is one of these::

    EventwireError                      anything the eventwire client raises on purpose
    ├── ClientClosedError               a call on a client after close()
    ├── EventRejectedError              the tracker: the server refused an event as invalid
    │                                   (passed to on_error; never retried)
    ├── SpoolError                      the tracker: its disk spool cannot be written
    │   └── SpoolFullError              ... because the spool reached its size limit
    └── RpcError                        an RPC ended without a response; a grpc.aio.AioRpcError
        ├── InvalidArgumentError        INVALID_ARGUMENT; .field_violations (google.rpc.BadRequest)
        ├── NotFoundError               NOT_FOUND
        ├── OutOfRangeError             OUT_OF_RANGE: a cursor older than retention; .resume_from
        ├── UnauthenticatedError        UNAUTHENTICATED: no valid token (see the client's token=)
        ├── PermissionDeniedError       PERMISSION_DENIED: the token lacks the scope
        ├── DeadlineExceededError       DEADLINE_EXCEEDED, or no time left for another attempt
        ├── ResourceExhaustedError      RESOURCE_EXHAUSTED; .pushback_ms as the server asked
        ├── UnavailableError            UNAVAILABLE: the backend cannot be reached right now
        │   └── CircuitOpenError        failed fast, no network; .half_open_at / .retry_after
        ├── CancelledRpcError           CANCELLED by the peer (asyncio's CancelledError is never
        │                               caught or replaced)
        └── InternalError               INTERNAL, UNKNOWN, DATA_LOSS and every other code

``RpcError`` subclasses :class:`grpc.aio.AioRpcError` (hence :class:`grpc.RpcError`),
so code written against plain grpcio keeps working: ``.code()``, ``.details()``
and ``.trailing_metadata()`` answer as usual, also on stubs a user builds over
:func:`eventwire.client.resilient_channel`.

Errors from grpcio are turned into this tree in exactly one place, the
:func:`rpc_errors` context manager (``raise map_rpc_error(exc) from exc``),
which every call shape of every client runs inside, sync and async, streams
and generators included, as httpx's ``map_httpcore_exceptions`` does for its
transports.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final, Protocol

import grpc
from grpc.aio import AioRpcError, Metadata

__all__ = [
    "CancelledRpcError",
    "CircuitOpenError",
    "ClientClosedError",
    "DeadlineExceededError",
    "EventRejectedError",
    "EventwireError",
    "InternalError",
    "InvalidArgumentError",
    "NotFoundError",
    "OutOfRangeError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "RpcError",
    "SpoolError",
    "SpoolFullError",
    "UnauthenticatedError",
    "UnavailableError",
    "code_of",
    "map_rpc_error",
    "rpc_errors",
    "trailers_of",
]

PUSHBACK_KEY: Final = "grpc-retry-pushback-ms"


class EventwireError(Exception):
    """Base of every error the eventwire client raises on purpose."""


class ClientClosedError(EventwireError):
    """The client was closed; make a new one."""


class EventRejectedError(EventwireError):
    """The server (or the tracker, for oversize events) refused one event; it is never retried."""

    def __init__(self, event_id: str, violations: Sequence[tuple[str, str]]) -> None:
        self.event_id = event_id
        self.violations = list(violations)
        """``(field, description)`` pairs."""
        text = "; ".join(f"{f}: {d}" for f, d in self.violations)
        super().__init__(f"event {event_id or '(no id)'} rejected: {text}")


class SpoolError(EventwireError):
    """The spool could not take or give back events; ``__cause__`` is the OSError, if any."""


class SpoolFullError(SpoolError):
    """The spool reached ``max_spool_bytes``, or its filesystem ran out of space."""


class RpcError(EventwireError, AioRpcError):
    """An RPC ended with a non-OK status: carries the code, message and details."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str = "",
        *,
        trailing_metadata: Metadata | None = None,
        initial_metadata: Metadata | None = None,
        debug_error_string: str | None = None,
        attempts: int = 1,
    ) -> None:
        AioRpcError.__init__(
            self,
            code,
            initial_metadata or Metadata(),
            trailing_metadata or Metadata(),
            message,
            debug_error_string,
        )
        self.status_code = code
        self.message = message
        self.attempts = attempts
        """How many attempts were made before giving up (0: none, e.g. circuit open)."""

    def __str__(self) -> str:
        return f"{self.status_code.name}: {self.message}"

    def __reduce__(self) -> Any:
        # AioRpcError's constructor takes positional arguments ours does not.
        return (_rebuild, (type(self), self.status_code, self.message, self.attempts))

    @property
    def status_details(self) -> Any:
        """The ``google.rpc.Status`` sent in ``grpc-status-details-bin``, or None."""
        from eventwire._status import status_of

        return status_of(self)


def _rebuild(cls: type[RpcError], code: grpc.StatusCode, message: str, attempts: int) -> RpcError:
    return cls(code, message, attempts=attempts)


class InvalidArgumentError(RpcError):
    """The server rejected the request; retrying the same request cannot help."""

    @property
    def field_violations(self) -> list[tuple[str, str]]:
        """``(field, description)`` pairs from the server's ``google.rpc.BadRequest``."""
        from eventwire._status import field_violations

        return field_violations(self)


class NotFoundError(RpcError):
    pass


_RESUME_FROM: Final = re.compile(r"resume from '([^']+)'")


class OutOfRangeError(RpcError):
    """A cursor or page token points before what retention still keeps.

    Never retried, nor resumed from on its own: skipping what was deleted is
    the caller's decision. :attr:`resume_from` says where to go on if it is.
    """

    @property
    def resume_from(self) -> str | None:
        """The oldest position still stored, as a cursor to resume after (from the
        server's message, see docs/reading.md#retention), or None if it names none."""
        found = _RESUME_FROM.search(self.message)
        return found.group(1) if found else None


class UnauthenticatedError(RpcError):
    pass


class PermissionDeniedError(RpcError):
    pass


class DeadlineExceededError(RpcError):
    pass


class ResourceExhaustedError(RpcError):
    @property
    def pushback_ms(self) -> int | None:
        """The server's ``grpc-retry-pushback-ms`` hint, if it sent one."""
        return parse_pushback(self.trailing_metadata())


class UnavailableError(RpcError):
    pass


class CircuitOpenError(UnavailableError):
    """The circuit breaker is open: the call failed without touching the network."""

    def __init__(self, target: str, half_open_at: float, *, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.target = target
        self.half_open_at = half_open_at
        """``time.monotonic()`` value at which the breaker lets trial calls through."""
        self.retry_after = max(0.0, half_open_at - now)
        """Seconds from when this error was raised until the breaker half-opens."""
        super().__init__(
            grpc.StatusCode.UNAVAILABLE,
            f"circuit open for {target}; half-opens in {self.retry_after:.3f}s",
            attempts=0,
        )

    def __reduce__(self) -> Any:
        return (CircuitOpenError, (self.target, self.half_open_at))


class CancelledRpcError(RpcError):
    pass


class InternalError(RpcError):
    pass


_BY_CODE: Final[dict[grpc.StatusCode, type[RpcError]]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.OUT_OF_RANGE: OutOfRangeError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.CANCELLED: CancelledRpcError,
}


def error_for(
    code: grpc.StatusCode,
    message: str,
    *,
    trailing_metadata: Metadata | None = None,
    attempts: int = 1,
) -> RpcError:
    """The tree's exception class for ``code``, built (not raised)."""
    cls = _BY_CODE.get(code, InternalError)
    return cls(code, message, trailing_metadata=trailing_metadata, attempts=attempts)


def map_rpc_error(exc: grpc.RpcError, *, attempts: int = 1) -> RpcError:
    """The tree's exception for a grpcio error (an eventwire one is returned as it is)."""
    if isinstance(exc, RpcError):
        return exc
    code = _call(exc, "code") or grpc.StatusCode.UNKNOWN
    message = _call(exc, "details") or ""
    trailing = _as_metadata(_call(exc, "trailing_metadata"))
    cls = _BY_CODE.get(code, InternalError)
    return cls(
        code,
        message,
        trailing_metadata=trailing,
        attempts=attempts,
        debug_error_string=_debug_string(exc),
    )


def _debug_string(exc: grpc.RpcError) -> str | None:
    # A blocking call cancelled by this process (a stream closed from another
    # thread) never gets a debug string, and grpcio's getter waits for one forever.
    cancelled = getattr(exc, "cancelled", None)
    if callable(cancelled) and cancelled():
        return None
    value = _call(exc, "debug_error_string")
    return value if isinstance(value, str) else None


class _Attempts(Protocol):
    @property
    def attempts(self) -> int: ...


@contextmanager
def rpc_errors(plan: _Attempts | None = None) -> Iterator[None]:
    """Inside this block a grpcio error leaves as the tree's, ``from`` the original.

    The one place errors are mapped: every call of every client (unary, client
    stream, bidirectional stream and the generators that read one), and every
    policy interceptor, raises through it. ``plan`` supplies the attempt count
    of a call that made several.
    """
    try:
        yield
    except RpcError:
        raise
    except grpc.RpcError as exc:
        raise map_rpc_error(exc, attempts=1 if plan is None else plan.attempts) from exc


def code_of(exc: grpc.RpcError | grpc.Call | Any) -> grpc.StatusCode:
    """The status code of a grpcio error or finished call; UNKNOWN if it carries none."""
    value = _call(exc, "code")
    return value if isinstance(value, grpc.StatusCode) else grpc.StatusCode.UNKNOWN


def trailers_of(exc: grpc.RpcError | grpc.Call | Any) -> Any:
    """Trailing metadata of a grpcio error or finished call, if it has any."""
    return _call(exc, "trailing_metadata")


def _call(exc: grpc.RpcError | Any, name: str) -> Any:
    # Sync grpcio errors are also grpc.Call objects; a bare grpc.RpcError has none of these.
    method = getattr(exc, name, None)
    return method() if callable(method) else None


def _as_metadata(raw: Any) -> Metadata:
    if raw is None:
        return Metadata()
    if isinstance(raw, Metadata):
        return raw
    return Metadata(*((k, v) for k, v in raw))


def parse_pushback(metadata: Any) -> int | None:
    """``grpc-retry-pushback-ms`` from trailing metadata.

    Returns the delay in milliseconds, ``-1`` when the server says "do not retry"
    (a negative or malformed value, per gRPC A6), or None when absent.
    """
    if not metadata:
        return None
    for key, value in metadata:
        if key != PUSHBACK_KEY:
            continue
        text = value.decode() if isinstance(value, bytes) else str(value)
        try:
            ms = int(text.strip())
        except ValueError:
            return -1
        return ms if ms >= 0 else -1
    return None
