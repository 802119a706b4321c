"""gRPC servicers: decode, call the service layer, map errors to status. Nothing else.

Unexpected exceptions never reach grpcio (which would send their text to the
client as UNKNOWN): they become INTERNAL with a generic message and a request
id, and are logged with that id.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable
from typing import NoReturn, TypeVar

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from eventwire.api import analytics_pb2, analytics_pb2_grpc, telemetry_pb2, telemetry_pb2_grpc
from eventwire.observability.logs import REQUEST_ID
from eventwire.server.auth import current_tenant
from eventwire.server.errors import FieldViolation, InvalidArgument, Overloaded, ServiceError
from eventwire.server.service import IngestService
from eventwire.store.base import EventRow

log = logging.getLogger("eventwire.server")

T = TypeVar("T")


def _details(err: InvalidArgument) -> bytes:
    bad_request = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in err.violations
        ]
    )
    detail = any_pb2.Any()
    detail.Pack(bad_request)
    status = status_pb2.Status(code=err.code.value[0], message=err.message, details=[detail])
    encoded: bytes = status.SerializeToString()
    return encoded


async def abort(context: grpc.aio.ServicerContext[object, object], err: ServiceError) -> NoReturn:
    metadata: list[tuple[str, str | bytes]] = []
    if isinstance(err, InvalidArgument):
        metadata.append(("grpc-status-details-bin", _details(err)))
    elif isinstance(err, Overloaded):
        metadata.append(("grpc-retry-pushback-ms", str(err.retry_after_ms)))
    await context.abort(err.code, err.message, trailing_metadata=tuple(metadata))


async def guarded(context: grpc.aio.ServicerContext[object, object], work: Awaitable[T]) -> T:
    try:
        return await work
    except ServiceError as err:
        if type(err) is ServiceError:  # a bare ServiceError is an internal failure
            await _internal(context, err)
        await abort(context, err)
    except grpc.aio.AbortError:
        raise
    except Exception as exc:  # noqa: BLE001 - the last line of defence; logged, not leaked
        await _internal(context, exc)


async def _internal(context: grpc.aio.ServicerContext[object, object], exc: Exception) -> NoReturn:
    # Set by the observability interceptor for every RPC of our services.
    request_id = REQUEST_ID.get() or uuid.uuid4().hex[:16]
    log.error(
        "unexpected error in %s",
        context.peer(),
        exc_info=exc,
        extra={"request_id": request_id},
    )
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error (request id {request_id})")


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


class AnalyticsServicer(analytics_pb2_grpc.AnalyticsServiceServicer):
    def __init__(
        self,
        service: IngestService,
        *,
        max_stream_events: int,
        max_stream_bytes: int,
        max_batches_in_flight: int = 8,
    ):
        self._service = service
        self._max_events = max_stream_events
        self._max_bytes = max_stream_bytes
        self._max_in_flight = max_batches_in_flight

    async def TrackEvent(
        self,
        request: analytics_pb2.TrackEventRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> analytics_pb2.TrackEventResponse:
        return await guarded(context, self._service.track_event(request, current_tenant()))

    async def StreamEvents(
        self,
        request_iterator: AsyncIterator[analytics_pb2.TrackEventRequest],
        context: grpc.aio.ServicerContext[object, object],
    ) -> analytics_pb2.TrackEventResponse:
        return await guarded(context, self._stream(request_iterator, context))

    async def _stream(
        self,
        requests: AsyncIterator[analytics_pb2.TrackEventRequest],
        context: grpc.aio.ServicerContext[object, object],
    ) -> analytics_pb2.TrackEventResponse:
        # Everything is held until the client half-closes, then committed in one
        # transaction: a stream that breaks or is cancelled stores nothing.
        rows: list[EventRow] = []
        size = 0
        tenant = current_tenant()
        async for req in requests:
            index = len(rows)
            size += req.ByteSize()
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
            rows.append(self._service.event_row(req, tenant, prefix=f"stream[{index}]."))
        await _confirm_peer(context)
        return await self._service.add_stream(rows)

    async def TrackEvents(
        self,
        request: analytics_pb2.EventBatch,
        context: grpc.aio.ServicerContext[object, object],
    ) -> analytics_pb2.IngestAck:
        return await guarded(context, self._batch(request))

    async def _batch(self, batch: analytics_pb2.EventBatch) -> analytics_pb2.IngestAck:
        return await self._service.track_batch(batch, current_tenant())

    # grpc.aio also accepts a streaming handler that writes through the context
    # and returns None; the generated stub only knows the iterator style.
    async def IngestEvents(  # type: ignore[override]
        self,
        request_iterator: AsyncIterator[analytics_pb2.EventBatch],
        context: grpc.aio.ServicerContext[object, object],
    ) -> None:
        await guarded(context, self._ingest(request_iterator, context))

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

        async def one(batch: analytics_pb2.EventBatch) -> None:
            try:
                ack = await self._batch(batch)
                async with writing:
                    # Shielded: a write cancelled half-way is still in grpcio's
                    # hands, and the final status cannot be sent until it is done.
                    write = asyncio.ensure_future(context.write(ack))
                    sending.add(write)
                    write.add_done_callback(sending.discard)
                    await asyncio.shield(write)
            finally:
                window.release()

        try:
            async with asyncio.TaskGroup() as group:
                async for batch in batches:
                    await window.acquire()
                    group.create_task(one(batch))
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
        return await guarded(context, self._service.count_events(request, current_tenant()))


class TelemetryServicer(telemetry_pb2_grpc.TelemetryServiceServicer):
    def __init__(self, service: IngestService) -> None:
        self._service = service

    async def ReportAlert(
        self,
        request: telemetry_pb2.AlertRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> telemetry_pb2.AlertResponse:
        return await guarded(context, self._service.report_alert(request, current_tenant()))

    async def GetAlert(
        self,
        request: telemetry_pb2.GetAlertRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> telemetry_pb2.Alert:
        return await guarded(context, self._service.get_alert(request, current_tenant()))
