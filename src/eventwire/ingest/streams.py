"""The seeds' ``StreamEvents``, transport-neutral: hold a stream's events, then store them at once.

Every door that carries the client stream (gRPC's servicer, the HTTP door's
Connect and gRPC-Web) hands its decoded messages here. Everything is held until
the client half-closes, then committed in one transaction: a stream that
breaks, is cancelled or holds an invalid event stores nothing. What it holds
is charged to the server's byte budget (``hold``) until then.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

from eventwire._errors import FieldViolation, InvalidArgument
from eventwire.api import analytics_pb2
from eventwire.ingest.service import IngestService
from eventwire.store.base import EventRow


class Holds(Protocol):
    """A byte budget (``eventwire.security.limits.ByteBudget``)."""

    def take(self, size: int) -> None: ...

    def release(self, size: int) -> None: ...


async def store_stream(
    service: IngestService,
    requests: AsyncIterator[analytics_pb2.TrackEventRequest],
    tenant: str,
    *,
    max_events: int,
    max_bytes: int,
    budget: Holds,
    overhead: int,
    before_commit: Callable[[], Awaitable[None]] | None = None,
) -> analytics_pb2.TrackEventResponse:
    """Hold every event of ``requests`` (``overhead`` bytes each beyond its encoding,
    charged to ``budget``), then store them in one transaction; ``before_commit`` runs
    once the client has half-closed (a door's check that it did not go away instead)."""
    rows: list[EventRow] = []
    size = 0
    held = 0
    # With a tracking plan, the stream's events are sorted by one version.
    sorted_ = service.sorter()
    index = -1
    try:
        async for req in requests:
            index += 1
            encoded = req.ByteSize()
            size += encoded
            if index >= max_events or size > max_bytes:
                raise InvalidArgument(
                    [
                        FieldViolation(
                            "stream",
                            f"a stream may carry at most {max_events} events and "
                            f"{max_bytes} bytes; split it into several streams",
                        )
                    ]
                )
            budget.take(encoded + overhead)
            held += encoded + overhead
            prefix = f"stream[{index}]."
            if sorted_ is None:
                rows.append(service.event_row(req, tenant, prefix=prefix))
            else:
                service.sort_event(sorted_, req, tenant, index, prefix)
        if before_commit is not None:
            await before_commit()
        return await service.add_stream(rows, sorted_)
    finally:
        budget.release(held)
