"""AnalyticsClient and TelemetryClient, async first, with blocking twins.

The twins share everything that is not I/O: the policy objects, the breaker
and throttle state machines (through :class:`~eventwire.client._core.Resilience`)
and the request building below. Only the waiting differs.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, Self

import grpc
from opentelemetry.trace import TracerProvider

from eventwire._ids import uuid7
from eventwire.api import analytics_pb2, analytics_pb2_grpc, telemetry_pb2, telemetry_pb2_grpc
from eventwire.client._breaker import CircuitBreaker
from eventwire.client._channel import (
    ChannelOptions,
    _plain_aio_channel,
    _plain_sync_channel,
    _resilience,
)
from eventwire.client._core import Resilience, RetryEvent
from eventwire.client._exceptions import ClientClosedError, RpcError, map_rpc_error
from eventwire.client._interceptors import (
    AioStreamStreamInterceptor,
    AioStreamUnaryInterceptor,
    AioUnaryUnaryInterceptor,
    SyncStreamUnaryInterceptor,
    SyncUnaryUnaryInterceptor,
)
from eventwire.client._metrics import ClientMetrics
from eventwire.client._policy import (
    DEFAULT_ANALYTICS_TIMEOUT,
    DEFAULT_TELEMETRY_TIMEOUT,
    CircuitBreakerPolicy,
    HedgingPolicy,
    RetryPolicy,
    ThrottlePolicy,
)
from eventwire.client._throttle import RetryThrottle

__all__ = ["AnalyticsClient", "SyncAnalyticsClient", "SyncTelemetryClient", "TelemetryClient"]

_DEFAULT = object()
_TRACK = "/analytics.AnalyticsService/TrackEvent"
_STREAM = "/analytics.AnalyticsService/StreamEvents"
_COUNT = "/analytics.AnalyticsService/CountEvents"
_REPORT = "/telemetry.TelemetryService/ReportAlert"
_GET = "/telemetry.TelemetryService/GetAlert"
_TRACK_BATCH = "/analytics.AnalyticsService/TrackEvents"
_INGEST = "/analytics.AnalyticsService/IngestEvents"


class _Base:
    """Configuration and request building shared by all four clients; no I/O."""

    default_timeout: float

    def __init__(
        self,
        target: str,
        *,
        timeout: float | None = None,
        retry: RetryPolicy | Any | None = _DEFAULT,
        breaker: CircuitBreakerPolicy | CircuitBreaker | Any | None = _DEFAULT,
        throttle: ThrottlePolicy | RetryThrottle | Any | None = _DEFAULT,
        hedging: HedgingPolicy | None = None,
        on_retry: Callable[[RetryEvent], None] | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        options: ChannelOptions = (),
        rng: random.Random | None = None,
        token: str | None = None,
        tracer_provider: TracerProvider | None = None,
        metrics: ClientMetrics | None = None,
    ) -> None:
        self.target = target
        # Sent with every call when the server checks tokens (--auth-tokens).
        self._metadata: tuple[tuple[str, str | bytes], ...] | None = (
            (("authorization", f"Bearer {token}"),) if token else None
        )
        self.resilience: Resilience = _resilience(
            target,
            timeout=self.default_timeout if timeout is None else timeout,
            retry=RetryPolicy() if retry is _DEFAULT else retry,
            breaker=CircuitBreakerPolicy() if breaker is _DEFAULT else breaker,
            throttle=ThrottlePolicy() if throttle is _DEFAULT else throttle,
            hedging=hedging,
            # Every method is idempotent through these clients: they give each
            # event an event_id and each alert an idempotency_key before the
            # first attempt, so a retried write is stored once.
            idempotent=True,
            on_retry=on_retry,
            rng=rng,
            tracer_provider=tracer_provider,
            metrics=metrics,
        )
        self._credentials = credentials
        self._options = options
        self._closed = False
        self._open_channel(target, credentials, options)
        self._bind_stub()

    def _open_channel(
        self, target: str, credentials: grpc.ChannelCredentials | None, options: ChannelOptions
    ) -> None:
        raise NotImplementedError

    def _bind_stub(self) -> None:
        raise NotImplementedError

    @property
    def breaker(self) -> CircuitBreaker | None:
        return self.resilience.breaker

    @property
    def throttle(self) -> RetryThrottle | None:
        return self.resilience.throttle

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError(f"client for {self.target} is closed")


def _new_id() -> str:
    # Time-ordered: ids of events sent together sit together in the store's index.
    return uuid7()


async def _with_ids(
    batches: AsyncIterable[analytics_pb2.EventBatch] | Iterable[analytics_pb2.EventBatch],
    fill: Callable[[analytics_pb2.EventBatch], analytics_pb2.EventBatch],
) -> AsyncIterator[analytics_pb2.EventBatch]:
    if isinstance(batches, AsyncIterable):
        async for batch in batches:
            yield fill(batch)
    else:
        for batch in batches:
            yield fill(batch)


def _event(
    event: analytics_pb2.TrackEventRequest | Mapping[str, Any],
) -> analytics_pb2.TrackEventRequest:
    if isinstance(event, Mapping):
        event = analytics_pb2.TrackEventRequest(**event)
    if not event.event_id:
        # Copy rather than mutate the caller's message.
        copy = analytics_pb2.TrackEventRequest()
        copy.CopyFrom(event)
        copy.event_id = _new_id()
        return copy
    return event


class _AnalyticsBase(_Base):
    default_timeout = DEFAULT_ANALYTICS_TIMEOUT

    @staticmethod
    def _track_request(
        event_name: str,
        user_id: str,
        properties: Mapping[str, str] | None,
        timestamp: int,
        event_id: str | None,
    ) -> analytics_pb2.TrackEventRequest:
        return analytics_pb2.TrackEventRequest(
            event_name=event_name,
            user_id=user_id,
            timestamp=timestamp,
            properties=dict(properties or {}),
            event_id=event_id or _new_id(),
        )

    @staticmethod
    def _stream_requests(
        events: Iterable[analytics_pb2.TrackEventRequest | Mapping[str, Any]],
    ) -> list[analytics_pb2.TrackEventRequest]:
        # A list, not a generator: a retried stream must send the same events again.
        return [_event(e) for e in events]

    @classmethod
    def _batch(
        cls,
        batch: analytics_pb2.EventBatch
        | Iterable[analytics_pb2.TrackEventRequest | Mapping[str, Any]],
        sequence: int = 0,
    ) -> analytics_pb2.EventBatch:
        """An EventBatch whose every event has an event_id, so resending it is safe."""
        events: list[analytics_pb2.TrackEventRequest | Mapping[str, Any]]
        if isinstance(batch, analytics_pb2.EventBatch):
            sequence, events = batch.sequence, list(batch.events)
        else:
            events = list(batch)
        return analytics_pb2.EventBatch(sequence=sequence, events=cls._stream_requests(events))

    @staticmethod
    def _count_request(
        event_name: str, user_id: str, start: int, end: int
    ) -> analytics_pb2.CountEventsRequest:
        return analytics_pb2.CountEventsRequest(
            event_name=event_name, user_id=user_id, start=start, end=end
        )


class _TelemetryBase(_Base):
    default_timeout = DEFAULT_TELEMETRY_TIMEOUT

    @staticmethod
    def _alert_request(
        device_id: str, alert_type: str, timestamp: int, idempotency_key: str | None
    ) -> telemetry_pb2.AlertRequest:
        return telemetry_pb2.AlertRequest(
            device_id=device_id,
            alert_type=alert_type,
            timestamp=timestamp,
            idempotency_key=idempotency_key or _new_id(),
        )


class _AsyncChannel(_Base):
    """A grpc.aio channel without interceptors: the clients drive the same policy code
    the interceptors run, minus grpcio's per-call interceptor task."""

    channel: grpc.aio.Channel

    def _open_channel(
        self, target: str, credentials: grpc.ChannelCredentials | None, options: ChannelOptions
    ) -> None:
        self.channel = _plain_aio_channel(target, credentials, options)
        self._unary = AioUnaryUnaryInterceptor(self.resilience)
        self._stream = AioStreamUnaryInterceptor(self.resilience)
        self._ingest = AioStreamStreamInterceptor(self.resilience)

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


class _SyncChannel(_Base):
    """The blocking twin of :class:`_AsyncChannel`."""

    channel: grpc.Channel

    def _open_channel(
        self, target: str, credentials: grpc.ChannelCredentials | None, options: ChannelOptions
    ) -> None:
        self.channel = _plain_sync_channel(target, credentials, options)
        self._unary = SyncUnaryUnaryInterceptor(self.resilience)
        self._stream = SyncStreamUnaryInterceptor(self.resilience)

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
    Policies default to :class:`RetryPolicy`, :class:`CircuitBreakerPolicy`
    and :class:`ThrottlePolicy` with their defaults; pass None to turn one
    off, or a :class:`CircuitBreaker` / :class:`RetryThrottle` object to share
    its state with other clients of the same backend. ``timeout`` is the
    deadline of each call, all attempts included. ``token`` is sent as
    ``authorization: Bearer TOKEN`` with every call.
"""


class AnalyticsClient(_AnalyticsBase, _AsyncChannel):
    """Async client of ``analytics.AnalyticsService``; use ``async with``."""

    __doc__ = (__doc__ or "") + _INIT_DOC

    def _bind_stub(self) -> None:
        self._stub = analytics_pb2_grpc.AnalyticsServiceStub(self.channel)

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
        self._check_open()
        request = self._track_request(event_name, user_id, properties, timestamp, event_id)
        try:
            return await self._unary.invoke(
                _TRACK, self._stub.TrackEvent, request, timeout, self._metadata
            )
        except RpcError:
            raise
        except grpc.RpcError as exc:
            raise map_rpc_error(exc) from exc

    async def stream_events(
        self,
        events: Iterable[analytics_pb2.TrackEventRequest | Mapping[str, Any]],
        *,
        timeout: float | None = None,
    ) -> analytics_pb2.TrackEventResponse:
        """Store a batch of events atomically in one client stream; retried as a whole."""
        self._check_open()
        requests = self._stream_requests(events)
        try:
            # A list on purpose (the stubs' types ask for an iterator): the
            # interceptor retries only streams it can send again.
            return await self._stream.invoke(
                _STREAM, self._stub.StreamEvents, requests, timeout, self._metadata
            )
        except RpcError:
            raise
        except grpc.RpcError as exc:
            raise map_rpc_error(exc) from exc

    async def count_events(
        self,
        event_name: str = "",
        user_id: str = "",
        *,
        start: int = 0,
        end: int = 0,
        timeout: float | None = None,
    ) -> int:
        self._check_open()
        request = self._count_request(event_name, user_id, start, end)
        try:
            reply = await self._unary.invoke(
                _COUNT, self._stub.CountEvents, request, timeout, self._metadata
            )
        except RpcError:
            raise
        except grpc.RpcError as exc:
            raise map_rpc_error(exc) from exc
        return reply.count

    async def track_events(
        self,
        events: analytics_pb2.EventBatch
        | Iterable[analytics_pb2.TrackEventRequest | Mapping[str, Any]],
        *,
        sequence: int = 0,
        timeout: float | None = None,
    ) -> analytics_pb2.IngestAck:
        """Store a batch, acknowledged once committed; invalid events come back as rejections."""
        self._check_open()
        batch = self._batch(events, sequence)
        try:
            return await self._unary.invoke(
                _TRACK_BATCH, self._stub.TrackEvents, batch, timeout, self._metadata
            )
        except RpcError:
            raise
        except grpc.RpcError as exc:
            raise map_rpc_error(exc) from exc

    async def ingest_events(
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
        self._check_open()
        call = self._ingest.open(
            _INGEST,
            self._stub.IngestEvents,
            _with_ids(batches, self._batch),
            timeout,
            self._metadata,
        )
        try:
            async for ack in call:
                yield ack
        except RpcError:
            raise
        except grpc.RpcError as exc:
            raise map_rpc_error(exc) from exc
        finally:
            # Leaving early (break, error, aclose) must not leave the stream open.
            call.cancel()


class SyncAnalyticsClient(_AnalyticsBase, _SyncChannel):
    """Blocking twin of :class:`AnalyticsClient`; use ``with``. Safe to share between threads."""

    __doc__ = (__doc__ or "") + _INIT_DOC

    def _bind_stub(self) -> None:
        self._stub = analytics_pb2_grpc.AnalyticsServiceStub(self.channel)

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
        self._check_open()
        request = self._track_request(event_name, user_id, properties, timestamp, event_id)
        try:
            return self._unary.invoke(
                _TRACK, self._stub.TrackEvent, request, timeout, self._metadata
            )
        except RpcError:
            raise
        except grpc.RpcError as exc:
            raise map_rpc_error(exc) from exc

    def stream_events(
        self,
        events: Iterable[analytics_pb2.TrackEventRequest | Mapping[str, Any]],
        *,
        timeout: float | None = None,
    ) -> analytics_pb2.TrackEventResponse:
        self._check_open()
        requests = self._stream_requests(events)
        try:
            # A list on purpose, see AnalyticsClient.stream_events.
            return self._stream.invoke_stream(
                _STREAM, self._stub.StreamEvents, requests, timeout, self._metadata
            )
        except RpcError:
            raise
        except grpc.RpcError as exc:
            raise map_rpc_error(exc) from exc

    def count_events(
        self,
        event_name: str = "",
        user_id: str = "",
        *,
        start: int = 0,
        end: int = 0,
        timeout: float | None = None,
    ) -> int:
        self._check_open()
        request = self._count_request(event_name, user_id, start, end)
        try:
            reply = self._unary.invoke(
                _COUNT, self._stub.CountEvents, request, timeout, self._metadata
            )
        except RpcError:
            raise
        except grpc.RpcError as exc:
            raise map_rpc_error(exc) from exc
        return reply.count

    def track_events(
        self,
        events: analytics_pb2.EventBatch
        | Iterable[analytics_pb2.TrackEventRequest | Mapping[str, Any]],
        *,
        sequence: int = 0,
        timeout: float | None = None,
    ) -> analytics_pb2.IngestAck:
        self._check_open()
        batch = self._batch(events, sequence)
        try:
            return self._unary.invoke(
                _TRACK_BATCH, self._stub.TrackEvents, batch, timeout, self._metadata
            )
        except RpcError:
            raise
        except grpc.RpcError as exc:
            raise map_rpc_error(exc) from exc

    def ingest_events(
        self, batches: Iterable[analytics_pb2.EventBatch], *, timeout: float | None = None
    ) -> Iterator[analytics_pb2.IngestAck]:
        """Blocking twin of :meth:`AnalyticsClient.ingest_events` (no breaker on this path)."""
        self._check_open()
        call = self._stub.IngestEvents(
            (self._batch(b) for b in batches), timeout=timeout, metadata=self._metadata
        )
        try:
            yield from call
        except RpcError:
            raise
        except grpc.RpcError as exc:
            raise map_rpc_error(exc) from exc
        finally:
            call.cancel()


class TelemetryClient(_TelemetryBase, _AsyncChannel):
    """Async client of ``telemetry.TelemetryService``; use ``async with``."""

    __doc__ = (__doc__ or "") + _INIT_DOC

    def _bind_stub(self) -> None:
        self._stub = telemetry_pb2_grpc.TelemetryServiceStub(self.channel)

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
        self._check_open()
        request = self._alert_request(device_id, alert_type, timestamp, idempotency_key)
        try:
            return await self._unary.invoke(
                _REPORT, self._stub.ReportAlert, request, timeout, self._metadata
            )
        except RpcError:
            raise
        except grpc.RpcError as exc:
            raise map_rpc_error(exc) from exc

    async def get_alert(
        self, tracking_id: str, *, timeout: float | None = None
    ) -> telemetry_pb2.Alert:
        self._check_open()
        request = telemetry_pb2.GetAlertRequest(tracking_id=tracking_id)
        try:
            return await self._unary.invoke(
                _GET, self._stub.GetAlert, request, timeout, self._metadata
            )
        except RpcError:
            raise
        except grpc.RpcError as exc:
            raise map_rpc_error(exc) from exc


class SyncTelemetryClient(_TelemetryBase, _SyncChannel):
    """Blocking twin of :class:`TelemetryClient`; use ``with``. Safe to share between threads."""

    __doc__ = (__doc__ or "") + _INIT_DOC

    def _bind_stub(self) -> None:
        self._stub = telemetry_pb2_grpc.TelemetryServiceStub(self.channel)

    def report_alert(
        self,
        device_id: str,
        alert_type: str,
        *,
        timestamp: int = 0,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> telemetry_pb2.AlertResponse:
        self._check_open()
        request = self._alert_request(device_id, alert_type, timestamp, idempotency_key)
        try:
            return self._unary.invoke(
                _REPORT, self._stub.ReportAlert, request, timeout, self._metadata
            )
        except RpcError:
            raise
        except grpc.RpcError as exc:
            raise map_rpc_error(exc) from exc

    def get_alert(self, tracking_id: str, *, timeout: float | None = None) -> telemetry_pb2.Alert:
        self._check_open()
        request = telemetry_pb2.GetAlertRequest(tracking_id=tracking_id)
        try:
            return self._unary.invoke(_GET, self._stub.GetAlert, request, timeout, self._metadata)
        except RpcError:
            raise
        except grpc.RpcError as exc:
            raise map_rpc_error(exc) from exc
