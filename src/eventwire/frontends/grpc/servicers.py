"""gRPC servicers: call the service layer with the decoded request. Nothing else.

What they raise becomes a status in their endpoint
(:mod:`eventwire.frontends.grpc.endpoints`), with every other per-call step.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Protocol

import grpc

from eventwire._errors import FieldViolation, InvalidArgument, ServiceError
from eventwire.api import analytics_pb2, analytics_pb2_grpc, telemetry_pb2, telemetry_pb2_grpc
from eventwire.ingest.service import IngestService
from eventwire.reads.limits import ReaderTooSlow, ReadLimits
from eventwire.reads.service import ReadService
from eventwire.security.auth import current_tenant
from eventwire.security.limits import HELD_EVENT_OVERHEAD, ByteBudget
from eventwire.store.base import EventRow

log = logging.getLogger("eventwire.reads")


class _Resumable(Protocol):
    @property
    def cursor(self) -> str: ...


async def _confirm_peer(context: grpc.aio.ServicerContext[object, object]) -> None:
    """Make sure the client half-closed the stream, rather than went away.

    grpc.aio ends a request iterator the same way when the client half-closes
    and when it cancels, misses its deadline or disconnects; the cancellation
    only reaches the handler later. A round trip into the core settles it: on a
    dead call it fails (or the handler task is cancelled meanwhile), so a stream
    the client abandoned is never committed.
    """
    try:
        await context.send_initial_metadata(())
    except Exception as exc:
        raise asyncio.CancelledError("client abandoned the stream") from exc


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error to report for a failed ingest stream: a ServiceError if there is one."""
    flat: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        exc = pending.pop(0)
        if isinstance(exc, BaseExceptionGroup):
            pending.extend(exc.exceptions)
        else:
            flat.append(exc)
    return next((e for e in flat if isinstance(e, ServiceError)), flat[0])


async def send_all(
    messages: AsyncIterator[_Resumable],
    context: grpc.aio.ServicerContext[object, object],
    limits: ReadLimits,
) -> None:
    """Write a streaming reply, each message once the previous one left.

    A write completes once HTTP/2 flow control let the message out to the
    socket, so a client that stops reading makes the server hold one message
    and its stream's window, no more. A write pending for
    ``stream_stall_seconds`` ends the stream: its reads stop at once, and as
    grpcio sends no status while a write is pending, RESOURCE_EXHAUSTED naming
    the message's cursor follows the message when the client takes it
    (resuming there repeats and skips nothing). Until then the call holds
    that one message; the client going away, or its connection reaching
    ``--max-connection-age``, ends it.
    """
    write: asyncio.Future[None] | None = None
    try:
        async for message in messages:
            # Not cancelled on time-out: a write cancelled half-way stays in
            # grpcio's hands, and the final status could not follow it.
            write = asyncio.ensure_future(context.write(message))
            done, _ = await asyncio.wait({write}, timeout=limits.stream_stall_seconds)
            if not done:
                break
            write.result()
        else:
            return
    except BaseException:
        if write is not None and not write.done():
            # The call is over (the client left): the write fails with nobody
            # awaiting it, and asyncio would log that as never retrieved.
            write.add_done_callback(_retrieve)
        raise
    finally:
        if isinstance(messages, AsyncGenerator):
            await messages.aclose()
    log.info(
        "a streaming reply's client read nothing for %g s; told to resume from its cursor "
        "and disconnected",
        limits.stream_stall_seconds,
    )
    assert write is not None  # noqa: S101 - the loop broke out on a pending write
    await write
    raise ReaderTooSlow(message.cursor, limits)


def _retrieve(write: asyncio.Future[None]) -> None:
    if not write.cancelled():
        write.exception()


class AnalyticsServicer(analytics_pb2_grpc.AnalyticsServiceServicer):
    def __init__(
        self,
        service: IngestService,
        reads: ReadService,
        *,
        max_stream_events: int,
        max_stream_bytes: int,
        max_batches_in_flight: int = 8,
        budget: ByteBudget | None = None,
    ):
        self._service = service
        self._budget = budget or ByteBudget(0)
        self._reads = reads
        self._max_events = max_stream_events
        self._max_bytes = max_stream_bytes
        self._max_in_flight = max_batches_in_flight

    async def TrackEvent(
        self,
        request: analytics_pb2.TrackEventRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> analytics_pb2.TrackEventResponse:
        return await self._service.track_event(request, current_tenant())

    async def StreamEvents(
        self,
        request_iterator: AsyncIterator[analytics_pb2.TrackEventRequest],
        context: grpc.aio.ServicerContext[object, object],
    ) -> analytics_pb2.TrackEventResponse:
        return await self._stream(request_iterator, context)

    async def _stream(
        self,
        requests: AsyncIterator[analytics_pb2.TrackEventRequest],
        context: grpc.aio.ServicerContext[object, object],
    ) -> analytics_pb2.TrackEventResponse:
        # Everything is held until the client half-closes, then committed in one
        # transaction: a stream that breaks or is cancelled stores nothing. What
        # it holds is charged to the server's byte budget until then.
        rows: list[EventRow] = []
        size = 0
        held = 0
        budget = self._budget
        tenant = current_tenant()
        service = self._service
        # With a tracking plan, the stream's events are sorted by one version.
        sorted_ = service.sorter()
        index = -1
        try:
            async for req in requests:
                index += 1
                encoded = req.ByteSize()
                size += encoded
                if index >= self._max_events or size > self._max_bytes:
                    raise InvalidArgument(
                        [
                            FieldViolation(
                                "stream",
                                f"a stream may carry at most {self._max_events} events and "
                                f"{self._max_bytes} bytes; split it into several streams",
                            )
                        ]
                    )
                budget.take(encoded + HELD_EVENT_OVERHEAD)
                held += encoded + HELD_EVENT_OVERHEAD
                prefix = f"stream[{index}]."
                if sorted_ is None:
                    rows.append(service.event_row(req, tenant, prefix=prefix))
                else:
                    service.sort_event(sorted_, req, tenant, index, prefix)
            await _confirm_peer(context)
            return await service.add_stream(rows, sorted_)
        finally:
            budget.release(held)

    async def TrackEvents(
        self,
        request: analytics_pb2.EventBatch,
        context: grpc.aio.ServicerContext[object, object],
    ) -> analytics_pb2.IngestAck:
        return await self._batch(request)

    async def _batch(self, batch: analytics_pb2.EventBatch) -> analytics_pb2.IngestAck:
        return await self._service.track_batch(batch, current_tenant())

    # grpc.aio also accepts a streaming handler that writes through the context
    # and returns None; the generated stub only knows the iterator style.
    async def IngestEvents(  # type: ignore[override]
        self,
        request_iterator: AsyncIterator[analytics_pb2.EventBatch],
        context: grpc.aio.ServicerContext[object, object],
    ) -> None:
        await self._ingest(request_iterator, context)

    async def _ingest(
        self,
        batches: AsyncIterator[analytics_pb2.EventBatch],
        context: grpc.aio.ServicerContext[object, object],
    ) -> None:
        # Several batches of one stream are in flight at once so that they share
        # group commits; each is acked as soon as its own commit is durable. The
        # window bounds what one client can make the server hold.
        window = asyncio.Semaphore(self._max_in_flight)
        writing = asyncio.Lock()  # grpc.aio allows one write at a time per call
        sending: set[asyncio.Future[None]] = set()

        budget = self._budget

        def _settled(write: asyncio.Future[None]) -> None:
            sending.discard(write)
            # Retrieved here: when the client is gone the shielded write fails
            # after nobody awaits it, and asyncio would log it as never retrieved.
            if not write.cancelled():
                write.exception()

        async def one(batch: analytics_pb2.EventBatch, cost: int) -> None:
            try:
                ack = await self._batch(batch)
                async with writing:
                    # Shielded: a write cancelled half-way is still in grpcio's
                    # hands, and the final status cannot be sent until it is done.
                    write = asyncio.ensure_future(context.write(ack))
                    sending.add(write)
                    write.add_done_callback(_settled)
                    await asyncio.shield(write)
            finally:
                budget.release(cost)
                window.release()

        try:
            async with asyncio.TaskGroup() as group:
                async for batch in batches:
                    await window.acquire()
                    cost = batch.ByteSize() + HELD_EVENT_OVERHEAD * len(batch.events)
                    try:
                        budget.take(cost)
                    except BaseException:
                        window.release()
                        raise
                    group.create_task(one(batch, cost))
        except BaseExceptionGroup as failed:
            # The first failure ends the stream with its status; batches not yet
            # acked are for the client to resend.
            if sending:
                await asyncio.wait(sending)
            raise _first_error(failed) from None

    async def CountEvents(
        self,
        request: analytics_pb2.CountEventsRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> analytics_pb2.CountEventsResponse:
        return await self._service.count_events(request, current_tenant())

    async def QueryEvents(
        self,
        request: analytics_pb2.QueryEventsRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> analytics_pb2.QueryEventsResponse:
        return await self._reads.query_events(request, current_tenant())

    async def ExportEvents(  # type: ignore[override]  # writes through the context
        self,
        request: analytics_pb2.ExportEventsRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> None:
        events = await self._reads.export_events(request, current_tenant())
        await send_all(events, context, self._reads.limits)


class TelemetryServicer(telemetry_pb2_grpc.TelemetryServiceServicer):
    def __init__(self, service: IngestService, reads: ReadService) -> None:
        self._service = service
        self._reads = reads

    async def ReportAlert(
        self,
        request: telemetry_pb2.AlertRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> telemetry_pb2.AlertResponse:
        return await self._service.report_alert(request, current_tenant())

    async def GetAlert(
        self,
        request: telemetry_pb2.GetAlertRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> telemetry_pb2.Alert:
        return await self._service.get_alert(request, current_tenant())

    async def ListAlerts(
        self,
        request: telemetry_pb2.ListAlertsRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> telemetry_pb2.ListAlertsResponse:
        return await self._reads.list_alerts(request, current_tenant())

    async def WatchAlerts(  # type: ignore[override]  # writes through the context
        self,
        request: telemetry_pb2.WatchAlertsRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> None:
        alerts = await self._reads.watch_alerts(request, current_tenant())
        await send_all(alerts, context, self._reads.limits)
