"""AnalyticsClient and its blocking twin SyncAnalyticsClient (``analytics.AnalyticsService``)."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping
from typing import Any

from eventwire._rpc import ANALYTICS_METHODS
from eventwire.api import analytics_pb2, analytics_pb2_grpc
from eventwire.client._base import _INIT_DOC, _Client, _enum, _new_id, _Resumable, _Rpc
from eventwire.client._policy import DEFAULT_ANALYTICS_TIMEOUT, DEFAULT_QUERY_TIMEOUT
from eventwire.client._streams import ResumableStream, SyncResumableStream
from eventwire.client._twins import _Async, _Sync

__all__ = ["AnalyticsClient", "SyncAnalyticsClient"]

Event = analytics_pb2.TrackEventRequest | Mapping[str, Any]
Events = analytics_pb2.EventBatch | Iterable[Event]
Bucket = int | str
"""An ``analytics.Bucket`` value, or its name: ``"hour"``, ``"BUCKET_HOUR"``."""


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
