"""What the four clients share, without I/O: configuration, policies, requests, paging.

The twins share everything that is not I/O, as httpx's clients share their
``BaseClient``: the :class:`~eventwire.client.ClientConfig` and the policies
built from it (:class:`~eventwire.client._core.Resilience`), the request
building (each RPC becomes an :class:`_Rpc`, described once below; a
resumable stream a :class:`_Resumable`, whose reconnect-and-resume decisions
are :class:`~eventwire.client._resume.Resumption`'s), paging
(:func:`_next_page`), and the error mapping
(:func:`~eventwire.client._exceptions.rpc_errors`, in the policy layer). A
public method is its RPC's signature and one line handing the shared ``_Rpc``
to the async or the blocking policy driver (:mod:`eventwire.client._twins`):
only the waiting differs. The clients themselves are per service:
:mod:`eventwire.client._analytics` and :mod:`eventwire.client._telemetry`.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Protocol, TypeVar, Unpack

from eventwire._ids import uuid7
from eventwire.api import telemetry_pb2
from eventwire.client._breaker import CircuitBreaker
from eventwire.client._config import ClientConfig, ClientOptions, configure
from eventwire.client._core import Resilience
from eventwire.client._exceptions import ClientClosedError
from eventwire.client._resume import Resumption
from eventwire.client._throttle import RetryThrottle

Resp = TypeVar("Resp")
Msg = TypeVar("Msg")


@dataclass(frozen=True, slots=True)
class _Rpc(Generic[Resp]):
    """One call, decided without I/O: the method, what to send, how long it may take."""

    name: str
    """The method's name in its service (``TrackEvent``): the stub's attribute."""
    method: str
    """Its full name, from the generated descriptors."""
    request: Any
    timeout: float | None


@dataclass(frozen=True, slots=True)
class _Resumable(Generic[Msg]):
    """A server stream resumed after its last cursor on a break (WatchAlerts, ExportEvents)."""

    name: str
    method: str
    request: Callable[[str], Any]
    """The request of a call resuming after a cursor ("" before the first message)."""
    after: str
    ends: bool
    """An OK end is the stream's end (an export without follow); else the server never ends it."""
    timeout: float | None
    """The whole stream's deadline, reconnects included; None: none (the default)."""


def _next_page(rpc: _Rpc[Any], page: telemetry_pb2.ListAlertsResponse) -> _Rpc[Any] | None:
    """The call for the page after ``page``, or None after the last one."""
    if not page.next_page_token:
        return None
    request = telemetry_pb2.ListAlertsRequest()
    request.CopyFrom(rpc.request)
    request.page_token = page.next_page_token
    return _Rpc(rpc.name, rpc.method, request, rpc.timeout)


class _Enum(Protocol):
    """A generated protobuf enum (``telemetry_pb2.Severity``)."""

    def Value(self, name: str) -> int: ...
    def keys(self) -> list[str]: ...


def _enum(wrapper: _Enum, prefix: str, value: int | str, name: str) -> int:
    """``value``, or the number of the enum value it names (case-insensitive, prefix optional)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"{name} must be an int or a name, got {value!r}")
    if isinstance(value, int):
        return value
    key = value.upper()
    if not key.startswith(prefix):
        key = prefix + key
    try:
        return int(wrapper.Value(key))
    except ValueError:
        names = ", ".join(n.removeprefix(prefix).lower() for n in wrapper.keys())  # noqa: SIM118 - not a dict
        raise ValueError(f"{name} must be one of {names}, got {value!r}") from None


class _Client:
    """Configuration and policies shared by all four clients; no I/O."""

    default_timeout: ClassVar[float]
    _methods: ClassVar[Mapping[str, str]]
    _stub_class: ClassVar[type[Any]]

    def __init__(
        self, target: str, config: ClientConfig | None = None, **options: Unpack[ClientOptions]
    ) -> None:
        self.target = target
        self.config = configure(config, options)
        # Every method is idempotent through these clients: they give each
        # event an event_id and each alert an idempotency_key before the
        # first attempt, so a retried write is stored once.
        self.resilience = Resilience(
            target, self.config, default_timeout=self.default_timeout, idempotent=True
        )
        self._closed = False
        # Streams still open when the client closes are stopped first, so their
        # loops end instead of reconnecting to a closed channel.
        self._streams: weakref.WeakSet[Any] = weakref.WeakSet()
        self._connect()
        self._stub = self._stub_class(self.channel)

    channel: Any

    def _connect(self) -> None:
        raise NotImplementedError

    @property
    def breaker(self) -> CircuitBreaker | None:
        return self.resilience.breaker

    @property
    def throttle(self) -> RetryThrottle | None:
        return self.resilience.throttle

    def _stop_streams(self) -> None:
        for stream in list(self._streams):
            stream._stop()

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError(f"client for {self.target} is closed")

    def _rpc(self, name: str, request: Any, timeout: float | None) -> _Rpc[Any]:
        self._check_open()
        return _Rpc(name, self._methods[name], request, timeout)

    def _resumable(
        self,
        name: str,
        request: Callable[[str], Any],
        *,
        after: str,
        ends: bool,
        timeout: float | None,
    ) -> _Resumable[Any]:
        self._check_open()
        return _Resumable(name, self._methods[name], request, after, ends, timeout)

    def _resumption(self, stream: _Resumable[Any]) -> Resumption:
        return Resumption(
            self.resilience,
            stream.method,
            stream.request,
            after=stream.after,
            ends=stream.ends,
            timeout=stream.timeout,
        )


def _new_id() -> str:
    # Time-ordered: ids of events sent together sit together in the store's index.
    return uuid7()


_INIT_DOC = """
    ``config`` is a :class:`ClientConfig`; its fields may also be given as
    keyword arguments, laid over it (``AnalyticsClient(target, timeout=5)``).
    Policies default to :class:`RetryPolicy`, :class:`CircuitBreakerPolicy`
    and :class:`ThrottlePolicy` with their defaults; pass None to turn one
    off, or a :class:`CircuitBreaker` / :class:`RetryThrottle` object to share
    its state with other clients of the same backend. ``timeout`` is the
    deadline of each call, all attempts included. ``token`` is sent as
    ``authorization: Bearer TOKEN`` with every call.
"""
