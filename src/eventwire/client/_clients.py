"""AnalyticsClient and TelemetryClient, async first, with blocking twins.

The twins share everything that is not I/O, as httpx's clients share their
``BaseClient``: the :class:`~eventwire.client.ClientConfig` and the policies
built from it (:class:`~eventwire.client._core.Resilience`), the request
building (each RPC becomes an :class:`_Rpc`, described once below; a
resumable stream a :class:`_Resumable`, whose reconnect-and-resume decisions
are :class:`~eventwire.client._resume.Resumption`'s), paging
(:func:`_next_page`), and the error mapping
(:func:`~eventwire.client._exceptions.rpc_errors`, in the policy layer). A
public method is its RPC's signature and one line handing the shared ``_Rpc``
to the async or the blocking policy driver: only the waiting differs.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar, Unpack

import grpc

from eventwire._ids import uuid7
from eventwire._rpc import ANALYTICS_METHODS, TELEMETRY_METHODS
from eventwire.api import analytics_pb2, analytics_pb2_grpc, telemetry_pb2, telemetry_pb2_grpc
from eventwire.client._breaker import CircuitBreaker
from eventwire.client._channel import plain_aio_channel, plain_sync_channel
from eventwire.client._config import ClientConfig, ClientOptions, configure
from eventwire.client._core import Resilience
from eventwire.client._exceptions import ClientClosedError, rpc_errors
from eventwire.client._interceptors import (
    AioStreamStreamInterceptor,
    AioStreamUnaryInterceptor,
    AioUnaryStreamInterceptor,
    AioUnaryUnaryInterceptor,
    SyncStreamStreamInterceptor,
    SyncStreamUnaryInterceptor,
    SyncUnaryStreamInterceptor,
    SyncUnaryUnaryInterceptor,
)
from eventwire.client._policy import (
    DEFAULT_ANALYTICS_TIMEOUT,
    DEFAULT_QUERY_TIMEOUT,
    DEFAULT_TELEMETRY_TIMEOUT,
)
from eventwire.client._resume import Resumption
from eventwire.client._streams import ResumableStream, SyncResumableStream
from eventwire.client._throttle import RetryThrottle

__all__ = ["AnalyticsClient", "SyncAnalyticsClient", "SyncTelemetryClient", "TelemetryClient"]

Resp = TypeVar("Resp")
Msg = TypeVar("Msg")
Event = analytics_pb2.TrackEventRequest | Mapping[str, Any]
Events = analytics_pb2.EventBatch | Iterable[Event]
Severity = int | str
"""A ``telemetry.Severity`` value, or its name: ``"warning"``, ``"SEVERITY_WARNING"``."""
Bucket = int | str
"""An ``analytics.Bucket`` value, or its name: ``"hour"``, ``"BUCKET_HOUR"``."""


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


def _event(event: Event) -> analytics_pb2.TrackEventRequest:
    if isinstance(event, Mapping):
        event = analytics_pb2.TrackEventRequest(**event)
    if not event.event_id:
        # Copy rather than mutate the caller's message.
        copy = analytics_pb2.TrackEventRequest()
        copy.CopyFrom(event)
        copy.event_id = _new_id()
        return copy
    return event


def _batch(batch: Events, sequence: int = 0) -> analytics_pb2.EventBatch:
    """An EventBatch whose every event has an event_id, so resending it is safe."""
    events: Iterable[Event]
    if isinstance(batch, analytics_pb2.EventBatch):
        sequence, events = batch.sequence, batch.events
    else:
        events = batch
    return analytics_pb2.EventBatch(sequence=sequence, events=[_event(e) for e in events])


async def _with_ids(
    batches: AsyncIterable[analytics_pb2.EventBatch] | Iterable[analytics_pb2.EventBatch],
) -> AsyncIterator[analytics_pb2.EventBatch]:
    if isinstance(batches, AsyncIterable):
        async for batch in batches:
            yield _batch(batch)
    else:
        for batch in batches:
            yield _batch(batch)


class _Analytics(_Client):
    """The requests of ``analytics.AnalyticsService``, built once for both twins."""

    default_timeout = DEFAULT_ANALYTICS_TIMEOUT
    _methods = ANALYTICS_METHODS
    _stub_class = analytics_pb2_grpc.AnalyticsServiceStub

    def _track(
        self,
        event_name: str,
        user_id: str,
        *,
        properties: Mapping[str, str] | None,
        timestamp: int,
        event_id: str | None,
        timeout: float | None,
    ) -> _Rpc[analytics_pb2.TrackEventResponse]:
        request = analytics_pb2.TrackEventRequest(
            event_name=event_name,
            user_id=user_id,
            timestamp=timestamp,
            properties=dict(properties or {}),
            event_id=event_id or _new_id(),
        )
        return self._rpc("TrackEvent", request, timeout)

    def _stream(
        self, events: Iterable[Event], timeout: float | None
    ) -> _Rpc[analytics_pb2.TrackEventResponse]:
        # A list, not a generator: a retried stream must send the same events again.
        return self._rpc("StreamEvents", [_event(e) for e in events], timeout)

    def _count(
        self, event_name: str, user_id: str, start: int, end: int, timeout: float | None
    ) -> _Rpc[analytics_pb2.CountEventsResponse]:
        request = analytics_pb2.CountEventsRequest(
            event_name=event_name, user_id=user_id, start=start, end=end
        )
        return self._rpc("CountEvents", request, timeout)

    def _track_batch(
        self, events: Events, sequence: int, timeout: float | None
    ) -> _Rpc[analytics_pb2.IngestAck]:
        return self._rpc("TrackEvents", _batch(events, sequence), timeout)

    def _ingest(self, batches: Any, timeout: float | None) -> _Rpc[analytics_pb2.IngestAck]:
        return self._rpc("IngestEvents", batches, timeout)

    def _query(
        self,
        event_name: str,
        *,
        start: int,
        end: int,
        bucket: Bucket,
        group_by: str,
        limit: int,
        timeout: float | None,
    ) -> _Rpc[analytics_pb2.QueryEventsResponse]:
        request = analytics_pb2.QueryEventsRequest(
            event_name=event_name,
            start=start,
            end=end,
            bucket=_enum(analytics_pb2.Bucket, "BUCKET_", bucket, "bucket"),  # type: ignore[arg-type]
            group_by=group_by,
            limit=limit,
        )
        if timeout is None and self.config.timeout is None:
            # An aggregate may scan a day of events: the 200 ms write default would cut it off.
            timeout = DEFAULT_QUERY_TIMEOUT
        return self._rpc("QueryEvents", request, timeout)

    def _export(
        self,
        event_name: str,
        *,
        start: int,
        end: int,
        after: str,
        follow: bool,
        timeout: float | None,
    ) -> _Resumable[analytics_pb2.ExportedEvent]:
        def request(cursor: str) -> analytics_pb2.ExportEventsRequest:
            return analytics_pb2.ExportEventsRequest(
                event_name=event_name, start=start, end=end, after=cursor, follow=follow
            )

        return self._resumable(
            "ExportEvents", request, after=after, ends=not follow, timeout=timeout
        )


class _Telemetry(_Client):
    """The requests of ``telemetry.TelemetryService``, built once for both twins."""

    default_timeout = DEFAULT_TELEMETRY_TIMEOUT
    _methods = TELEMETRY_METHODS
    _stub_class = telemetry_pb2_grpc.TelemetryServiceStub

    def _report(
        self,
        device_id: str,
        alert_type: str,
        *,
        timestamp: int,
        idempotency_key: str | None,
        severity: Severity,
        message: str,
        attributes: Mapping[str, str] | None,
        timeout: float | None,
    ) -> _Rpc[telemetry_pb2.AlertResponse]:
        request = telemetry_pb2.AlertRequest(
            device_id=device_id,
            alert_type=alert_type,
            timestamp=timestamp,
            idempotency_key=idempotency_key or _new_id(),
            severity=_severity(severity, "severity"),
            message=message,
            attributes=dict(attributes or {}),
        )
        return self._rpc("ReportAlert", request, timeout)

    def _list(
        self,
        *,
        device_id: str,
        alert_type: str,
        min_severity: Severity,
        start: int,
        end: int,
        page_size: int,
        page_token: str,
        timeout: float | None,
    ) -> _Rpc[telemetry_pb2.ListAlertsResponse]:
        request = telemetry_pb2.ListAlertsRequest(
            device_id=device_id,
            alert_type=alert_type,
            min_severity=_severity(min_severity, "min_severity"),
            start=start,
            end=end,
            page_size=page_size,
            page_token=page_token,
        )
        return self._rpc("ListAlerts", request, timeout)

    def _watch(
        self,
        *,
        device_id: str,
        alert_type: str,
        min_severity: Severity,
        after: str,
        from_start: bool,
        timeout: float | None,
    ) -> _Resumable[telemetry_pb2.Alert]:
        severity = _severity(min_severity, "min_severity")

        def request(cursor: str) -> telemetry_pb2.WatchAlertsRequest:
            return telemetry_pb2.WatchAlertsRequest(
                device_id=device_id,
                alert_type=alert_type,
                min_severity=severity,
                after=cursor,
                # Until the first alert arrives, every call starts where the first
                # did (after and from_start together are the server's to refuse).
                from_start=from_start and cursor == after,
            )

        return self._resumable("WatchAlerts", request, after=after, ends=False, timeout=timeout)

    def _get(self, tracking_id: str, timeout: float | None) -> _Rpc[telemetry_pb2.Alert]:
        return self._rpc(
            "GetAlert", telemetry_pb2.GetAlertRequest(tracking_id=tracking_id), timeout
        )


def _severity(value: Severity, name: str) -> Any:
    return _enum(telemetry_pb2.Severity, "SEVERITY_", value, name)


class _Async(_Client):
    """The async policy drivers on a grpc.aio channel without interceptors: the same
    policy code the interceptors run, minus grpcio's per-call interceptor task."""

    channel: grpc.aio.Channel

    def _connect(self) -> None:
        self.channel = plain_aio_channel(self.target, self.config.credentials, self.config.options)
        self._unary = AioUnaryUnaryInterceptor(self.resilience)
        self._client_stream = AioStreamUnaryInterceptor(self.resilience)
        self._bidi = AioStreamStreamInterceptor(self.resilience)
        self._server_stream = AioUnaryStreamInterceptor(self.resilience)

    async def _call(self, rpc: _Rpc[Resp]) -> Resp:
        callable_ = getattr(self._stub, rpc.name)
        return await self._unary.invoke(rpc.method, callable_, rpc.request, rpc.timeout)

    async def _send(self, rpc: _Rpc[Resp]) -> Resp:
        # The requests are a list on purpose (the stubs' types ask for an
        # iterator): the driver retries only streams it can send again.
        callable_ = getattr(self._stub, rpc.name)
        return await self._client_stream.invoke(rpc.method, callable_, rpc.request, rpc.timeout)

    async def _exchange(self, rpc: _Rpc[Resp]) -> AsyncIterator[Resp]:
        call = self._bidi.open(rpc.method, getattr(self._stub, rpc.name), rpc.request, rpc.timeout)
        try:
            with rpc_errors():
                async for reply in call:
                    yield reply
        finally:
            # Leaving early (break, error, aclose) must not leave the stream open.
            call.cancel()

    def _resume(self, stream: _Resumable[Msg]) -> ResumableStream[Any]:
        callable_ = getattr(self._stub, stream.name)
        resumable: ResumableStream[Any] = ResumableStream(
            self._resumption(stream),
            lambda request, timeout: self._server_stream.open(
                stream.method, callable_, request, timeout
            ),
        )
        self._streams.add(resumable)
        return resumable

    async def close(self, grace: float | None = None) -> None:
        """Close the channel; calls in flight are cancelled after ``grace`` seconds.

        Watches and exports still open end their loops (without an error) at once.
        """
        if not self._closed:
            self._closed = True
            self._stop_streams()
            await self.channel.close(grace)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class _Sync(_Client):
    """The blocking twin of :class:`_Async`."""

    channel: grpc.Channel

    def _connect(self) -> None:
        self.channel = plain_sync_channel(self.target, self.config.credentials, self.config.options)
        self._unary = SyncUnaryUnaryInterceptor(self.resilience)
        self._client_stream = SyncStreamUnaryInterceptor(self.resilience)
        self._bidi = SyncStreamStreamInterceptor(self.resilience)
        self._server_stream = SyncUnaryStreamInterceptor(self.resilience)

    def _call(self, rpc: _Rpc[Resp]) -> Resp:
        callable_ = getattr(self._stub, rpc.name)
        reply: Resp = self._unary.invoke(rpc.method, callable_, rpc.request, rpc.timeout)
        return reply

    def _send(self, rpc: _Rpc[Resp]) -> Resp:
        callable_ = getattr(self._stub, rpc.name)
        reply: Resp = self._client_stream.invoke(rpc.method, callable_, rpc.request, rpc.timeout)
        return reply

    def _exchange(self, rpc: _Rpc[Resp]) -> Iterator[Resp]:
        call = self._bidi.open(rpc.method, getattr(self._stub, rpc.name), rpc.request, rpc.timeout)
        try:
            with rpc_errors():
                yield from call
        finally:
            call.cancel()

    def _resume(self, stream: _Resumable[Msg]) -> SyncResumableStream[Any]:
        callable_ = getattr(self._stub, stream.name)
        resumable: SyncResumableStream[Any] = SyncResumableStream(
            self._resumption(stream),
            lambda request, timeout: self._server_stream.open(
                stream.method, callable_, request, timeout
            ),
        )
        self._streams.add(resumable)
        return resumable

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._stop_streams()
            self.channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


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


class AnalyticsClient(_Analytics, _Async):
    """Async client of ``analytics.AnalyticsService``; use ``async with``."""

    __doc__ = (__doc__ or "") + _INIT_DOC

    async def track_event(
        self,
        event_name: str,
        user_id: str = "",
        *,
        properties: Mapping[str, str] | None = None,
        timestamp: int = 0,
        event_id: str | None = None,
        timeout: float | None = None,
    ) -> analytics_pb2.TrackEventResponse:
        """Store one event (once, however often it is retried). ``timestamp`` 0 means now."""
        return await self._call(
            self._track(
                event_name,
                user_id,
                properties=properties,
                timestamp=timestamp,
                event_id=event_id,
                timeout=timeout,
            )
        )

    async def stream_events(
        self, events: Iterable[Event], *, timeout: float | None = None
    ) -> analytics_pb2.TrackEventResponse:
        """Store a batch of events atomically in one client stream; retried as a whole."""
        return await self._send(self._stream(events, timeout))

    async def count_events(
        self,
        event_name: str = "",
        user_id: str = "",
        *,
        start: int = 0,
        end: int = 0,
        timeout: float | None = None,
    ) -> int:
        return (await self._call(self._count(event_name, user_id, start, end, timeout))).count

    async def track_events(
        self, events: Events, *, sequence: int = 0, timeout: float | None = None
    ) -> analytics_pb2.IngestAck:
        """Store a batch, acknowledged once committed; invalid events come back as rejections."""
        return await self._call(self._track_batch(events, sequence, timeout))

    def ingest_events(
        self,
        batches: AsyncIterable[analytics_pb2.EventBatch] | Iterable[analytics_pb2.EventBatch],
        *,
        timeout: float | None = None,
    ) -> AsyncIterator[analytics_pb2.IngestAck]:
        """Stream batches, yielding each IngestAck (matched by sequence, maybe out of order).

        A long-lived stream: no deadline unless ``timeout`` is given, and no
        retries (resend every batch not acked, as the contract says); the
        breaker still guards it. Events get an event_id if they have none.
        """
        return self._exchange(self._ingest(_with_ids(batches), timeout))

    async def query_events(
        self,
        event_name: str = "",
        *,
        start: int = 0,
        end: int = 0,
        bucket: Bucket = 0,
        group_by: str = "",
        limit: int = 0,
        timeout: float | None = None,
    ) -> list[analytics_pb2.EventAggregate]:
        """Exact counts and distinct users per UTC time bucket and group (docs/reading.md).

        ``bucket``: ``"none"`` (one row per group), ``"minute"``, ``"hour"``,
        ``"day"``, or an ``analytics_pb2.Bucket`` value. ``group_by``: empty,
        ``"event_name"``, ``"user_id"`` or ``"properties.<key>"``. Retried like
        any read; its deadline is :data:`DEFAULT_QUERY_TIMEOUT` (10 s) unless
        ``timeout`` or the client's config sets one.
        """
        query = self._query(
            event_name,
            start=start,
            end=end,
            bucket=bucket,
            group_by=group_by,
            limit=limit,
            timeout=timeout,
        )
        return list((await self._call(query)).rows)

    def export_events(
        self,
        event_name: str = "",
        *,
        start: int = 0,
        end: int = 0,
        after: str = "",
        follow: bool = False,
        timeout: float | None = None,
    ) -> ResumableStream[analytics_pb2.ExportedEvent]:
        """Every stored event of the range once, in commit order, each with its cursor.

        Without ``follow`` it ends after the last event committed before the
        export began (before the latest reconnect, if it had to resume);
        with ``follow`` it tails new commits until closed. A break (UNAVAILABLE)
        is resumed after the last cursor handed out, with the client's backoff;
        ``after`` starts after a cursor saved from an earlier export. No
        deadline unless ``timeout`` is given, which then bounds the whole export.
        """
        return self._resume(
            self._export(
                event_name, start=start, end=end, after=after, follow=follow, timeout=timeout
            )
        )


class SyncAnalyticsClient(_Analytics, _Sync):
    """Blocking twin of :class:`AnalyticsClient`; use ``with``. Safe to share between threads."""

    __doc__ = (__doc__ or "") + _INIT_DOC

    def track_event(
        self,
        event_name: str,
        user_id: str = "",
        *,
        properties: Mapping[str, str] | None = None,
        timestamp: int = 0,
        event_id: str | None = None,
        timeout: float | None = None,
    ) -> analytics_pb2.TrackEventResponse:
        return self._call(
            self._track(
                event_name,
                user_id,
                properties=properties,
                timestamp=timestamp,
                event_id=event_id,
                timeout=timeout,
            )
        )

    def stream_events(
        self, events: Iterable[Event], *, timeout: float | None = None
    ) -> analytics_pb2.TrackEventResponse:
        return self._send(self._stream(events, timeout))

    def count_events(
        self,
        event_name: str = "",
        user_id: str = "",
        *,
        start: int = 0,
        end: int = 0,
        timeout: float | None = None,
    ) -> int:
        return self._call(self._count(event_name, user_id, start, end, timeout)).count

    def track_events(
        self, events: Events, *, sequence: int = 0, timeout: float | None = None
    ) -> analytics_pb2.IngestAck:
        return self._call(self._track_batch(events, sequence, timeout))

    def ingest_events(
        self, batches: Iterable[analytics_pb2.EventBatch], *, timeout: float | None = None
    ) -> Iterator[analytics_pb2.IngestAck]:
        """Blocking twin of :meth:`AnalyticsClient.ingest_events`, breaker included."""
        return self._exchange(self._ingest((_batch(b) for b in batches), timeout))

    def query_events(
        self,
        event_name: str = "",
        *,
        start: int = 0,
        end: int = 0,
        bucket: Bucket = 0,
        group_by: str = "",
        limit: int = 0,
        timeout: float | None = None,
    ) -> list[analytics_pb2.EventAggregate]:
        """Blocking twin of :meth:`AnalyticsClient.query_events`."""
        query = self._query(
            event_name,
            start=start,
            end=end,
            bucket=bucket,
            group_by=group_by,
            limit=limit,
            timeout=timeout,
        )
        return list(self._call(query).rows)

    def export_events(
        self,
        event_name: str = "",
        *,
        start: int = 0,
        end: int = 0,
        after: str = "",
        follow: bool = False,
        timeout: float | None = None,
    ) -> SyncResumableStream[analytics_pb2.ExportedEvent]:
        """Blocking twin of :meth:`AnalyticsClient.export_events`."""
        return self._resume(
            self._export(
                event_name, start=start, end=end, after=after, follow=follow, timeout=timeout
            )
        )


class TelemetryClient(_Telemetry, _Async):
    """Async client of ``telemetry.TelemetryService``; use ``async with``."""

    __doc__ = (__doc__ or "") + _INIT_DOC

    async def report_alert(
        self,
        device_id: str,
        alert_type: str,
        *,
        timestamp: int = 0,
        idempotency_key: str | None = None,
        severity: Severity = 0,
        message: str = "",
        attributes: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> telemetry_pb2.AlertResponse:
        """Report an alert; retries reuse the idempotency key, so one tracking id comes back.

        ``severity``: ``"info"``, ``"warning"``, ``"critical"`` or a
        ``telemetry_pb2.Severity`` value.
        """
        return await self._call(
            self._report(
                device_id,
                alert_type,
                timestamp=timestamp,
                idempotency_key=idempotency_key,
                severity=severity,
                message=message,
                attributes=attributes,
                timeout=timeout,
            )
        )

    async def get_alert(
        self, tracking_id: str, *, timeout: float | None = None
    ) -> telemetry_pb2.Alert:
        return await self._call(self._get(tracking_id, timeout))

    async def list_alerts(
        self,
        *,
        device_id: str = "",
        alert_type: str = "",
        min_severity: Severity = 0,
        start: int = 0,
        end: int = 0,
        page_size: int = 0,
        timeout: float | None = None,
    ) -> AsyncIterator[telemetry_pb2.Alert]:
        """Every stored alert matching the filter, oldest first in commit order.

        Fetches page after page (``page_size`` alerts each, 0: the server's
        100) as the loop reaches them; each page is one call with the
        client's deadline (``timeout``) and retries. ``start``/``end`` bound
        the alert's timestamp (epoch ms, end exclusive).
        """
        page: _Rpc[Any] | None = self._list(
            device_id=device_id,
            alert_type=alert_type,
            min_severity=min_severity,
            start=start,
            end=end,
            page_size=page_size,
            page_token="",
            timeout=timeout,
        )
        while page is not None:
            reply: telemetry_pb2.ListAlertsResponse = await self._call(page)
            for alert in reply.alerts:
                yield alert
            page = _next_page(page, reply)

    async def list_alerts_page(
        self,
        *,
        device_id: str = "",
        alert_type: str = "",
        min_severity: Severity = 0,
        start: int = 0,
        end: int = 0,
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> telemetry_pb2.ListAlertsResponse:
        """One page; pass its ``next_page_token`` (with the same filter) for the next."""
        return await self._call(
            self._list(
                device_id=device_id,
                alert_type=alert_type,
                min_severity=min_severity,
                start=start,
                end=end,
                page_size=page_size,
                page_token=page_token,
                timeout=timeout,
            )
        )

    def watch_alerts(
        self,
        *,
        device_id: str = "",
        alert_type: str = "",
        min_severity: Severity = 0,
        after: str = "",
        from_start: bool = False,
        timeout: float | None = None,
    ) -> ResumableStream[telemetry_pb2.Alert]:
        """Alerts as they commit, each exactly once, until closed.

        From now on by default; ``from_start``: from the oldest stored alert;
        ``after``: right after a cursor saved earlier (``stream.cursor``, or an
        alert's ``cursor`` from :meth:`list_alerts` with the same filter).
        A break (UNAVAILABLE: connection lost, server restarted or draining)
        is resumed after the last alert handed out, with the client's backoff,
        so none is missed or repeated. Until the first alert arrives there is
        no cursor: a watch "from now" that breaks before then resumes from
        now again. No deadline unless ``timeout`` is given, which then bounds
        the whole watch.
        """
        return self._resume(
            self._watch(
                device_id=device_id,
                alert_type=alert_type,
                min_severity=min_severity,
                after=after,
                from_start=from_start,
                timeout=timeout,
            )
        )


class SyncTelemetryClient(_Telemetry, _Sync):
    """Blocking twin of :class:`TelemetryClient`; use ``with``. Safe to share between threads."""

    __doc__ = (__doc__ or "") + _INIT_DOC

    def report_alert(
        self,
        device_id: str,
        alert_type: str,
        *,
        timestamp: int = 0,
        idempotency_key: str | None = None,
        severity: Severity = 0,
        message: str = "",
        attributes: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> telemetry_pb2.AlertResponse:
        return self._call(
            self._report(
                device_id,
                alert_type,
                timestamp=timestamp,
                idempotency_key=idempotency_key,
                severity=severity,
                message=message,
                attributes=attributes,
                timeout=timeout,
            )
        )

    def get_alert(self, tracking_id: str, *, timeout: float | None = None) -> telemetry_pb2.Alert:
        return self._call(self._get(tracking_id, timeout))

    def list_alerts(
        self,
        *,
        device_id: str = "",
        alert_type: str = "",
        min_severity: Severity = 0,
        start: int = 0,
        end: int = 0,
        page_size: int = 0,
        timeout: float | None = None,
    ) -> Iterator[telemetry_pb2.Alert]:
        """Blocking twin of :meth:`TelemetryClient.list_alerts`."""
        page: _Rpc[Any] | None = self._list(
            device_id=device_id,
            alert_type=alert_type,
            min_severity=min_severity,
            start=start,
            end=end,
            page_size=page_size,
            page_token="",
            timeout=timeout,
        )
        while page is not None:
            reply: telemetry_pb2.ListAlertsResponse = self._call(page)
            yield from reply.alerts
            page = _next_page(page, reply)

    def list_alerts_page(
        self,
        *,
        device_id: str = "",
        alert_type: str = "",
        min_severity: Severity = 0,
        start: int = 0,
        end: int = 0,
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> telemetry_pb2.ListAlertsResponse:
        return self._call(
            self._list(
                device_id=device_id,
                alert_type=alert_type,
                min_severity=min_severity,
                start=start,
                end=end,
                page_size=page_size,
                page_token=page_token,
                timeout=timeout,
            )
        )

    def watch_alerts(
        self,
        *,
        device_id: str = "",
        alert_type: str = "",
        min_severity: Severity = 0,
        after: str = "",
        from_start: bool = False,
        timeout: float | None = None,
    ) -> SyncResumableStream[telemetry_pb2.Alert]:
        """Blocking twin of :meth:`TelemetryClient.watch_alerts`; ``close()`` from any thread."""
        return self._resume(
            self._watch(
                device_id=device_id,
                alert_type=alert_type,
                min_severity=min_severity,
                after=after,
                from_start=from_start,
                timeout=timeout,
            )
        )
