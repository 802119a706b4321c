"""AnalyticsClient and TelemetryClient, async first, with blocking twins.

The twins share everything that is not I/O, as httpx's clients share their
``BaseClient``: the :class:`~eventwire.client.ClientConfig` and the policies
built from it (:class:`~eventwire.client._core.Resilience`), the request
building (each RPC becomes an :class:`_Rpc`, described once below), and the
error mapping (:func:`~eventwire.client._exceptions.rpc_errors`, in the policy
layer). A public method is its RPC's signature and one line handing the
shared ``_Rpc`` to the async or the blocking policy driver: only the waiting differs.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, Generic, Self, TypeVar, Unpack

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
    AioUnaryUnaryInterceptor,
    SyncStreamStreamInterceptor,
    SyncStreamUnaryInterceptor,
    SyncUnaryUnaryInterceptor,
)
from eventwire.client._policy import DEFAULT_ANALYTICS_TIMEOUT, DEFAULT_TELEMETRY_TIMEOUT
from eventwire.client._throttle import RetryThrottle

__all__ = ["AnalyticsClient", "SyncAnalyticsClient", "SyncTelemetryClient", "TelemetryClient"]

Resp = TypeVar("Resp")
Event = analytics_pb2.TrackEventRequest | Mapping[str, Any]
Events = analytics_pb2.EventBatch | Iterable[Event]


@dataclass(frozen=True, slots=True)
class _Rpc(Generic[Resp]):
    """One call, decided without I/O: the method, what to send, how long it may take."""

    name: str
    """The method's name in its service (``TrackEvent``): the stub's attribute."""
    method: str
    """Its full name, from the generated descriptors."""
    request: Any
    timeout: float | None


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

    def _rpc(self, name: str, request: Any, timeout: float | None) -> _Rpc[Any]:
        if self._closed:
            raise ClientClosedError(f"client for {self.target} is closed")
        return _Rpc(name, self._methods[name], request, timeout)


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


class _Telemetry(_Client):
    """The requests of ``telemetry.TelemetryService``, built once for both twins."""

    default_timeout = DEFAULT_TELEMETRY_TIMEOUT
    _methods = TELEMETRY_METHODS
    _stub_class = telemetry_pb2_grpc.TelemetryServiceStub

    def _report(
        self,
        device_id: str,
        alert_type: str,
        timestamp: int,
        idempotency_key: str | None,
        timeout: float | None,
    ) -> _Rpc[telemetry_pb2.AlertResponse]:
        request = telemetry_pb2.AlertRequest(
            device_id=device_id,
            alert_type=alert_type,
            timestamp=timestamp,
            idempotency_key=idempotency_key or _new_id(),
        )
        return self._rpc("ReportAlert", request, timeout)

    def _get(self, tracking_id: str, timeout: float | None) -> _Rpc[telemetry_pb2.Alert]:
        return self._rpc(
            "GetAlert", telemetry_pb2.GetAlertRequest(tracking_id=tracking_id), timeout
        )


class _Async(_Client):
    """The async policy drivers on a grpc.aio channel without interceptors: the same
    policy code the interceptors run, minus grpcio's per-call interceptor task."""

    channel: grpc.aio.Channel

    def _connect(self) -> None:
        self.channel = plain_aio_channel(self.target, self.config.credentials, self.config.options)
        self._unary = AioUnaryUnaryInterceptor(self.resilience)
        self._client_stream = AioStreamUnaryInterceptor(self.resilience)
        self._bidi = AioStreamStreamInterceptor(self.resilience)

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

    async def close(self, grace: float | None = None) -> None:
        """Close the channel; calls in flight are cancelled after ``grace`` seconds."""
        if not self._closed:
            self._closed = True
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

    def close(self) -> None:
        if not self._closed:
            self._closed = True
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
        timeout: float | None = None,
    ) -> telemetry_pb2.AlertResponse:
        """Report an alert; retries reuse the idempotency key, so one tracking id comes back."""
        return await self._call(
            self._report(device_id, alert_type, timestamp, idempotency_key, timeout)
        )

    async def get_alert(
        self, tracking_id: str, *, timeout: float | None = None
    ) -> telemetry_pb2.Alert:
        return await self._call(self._get(tracking_id, timeout))


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
        timeout: float | None = None,
    ) -> telemetry_pb2.AlertResponse:
        return self._call(self._report(device_id, alert_type, timestamp, idempotency_key, timeout))

    def get_alert(self, tracking_id: str, *, timeout: float | None = None) -> telemetry_pb2.Alert:
        return self._call(self._get(tracking_id, timeout))
