"""Retention deletes expired rows; an older cursor gets OUT_OF_RANGE and where to go on."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest

from eventwire.api import analytics_pb2, telemetry_pb2
from eventwire.testing import running_server
from tests.support.reads import Stubs


async def _until(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    async def poll() -> None:
        # The purge runs in the server; polling its visible effect is all a client can do.
        while not await check():  # noqa: ASYNC110
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), timeout)


@pytest.mark.parametrize("kind", ["alerts", "events"])
async def test_a_cursor_older_than_retention_is_out_of_range(read_store: str, kind: str) -> None:
    # Long enough for five writes and a read on a busy machine, before the first expires.
    retention: dict[str, Any] = {f"{kind}_retention": "3s"}
    async with (
        running_server(
            store=read_store, retention_interval=0.05, retention_chunk=2, **retention
        ) as srv,
        grpc.aio.insecure_channel(srv.address) as ch,
    ):
        stubs = Stubs(ch)
        if kind == "alerts":
            ids = [await stubs.alert() for _ in range(5)]
            listed = await stubs.telemetry.ListAlerts(telemetry_pb2.ListAlertsRequest())
            listed_ids = [a.tracking_id for a in listed.alerts]
            assert listed_ids, "every alert expired before it could be listed"
            assert listed_ids == ids[-len(listed_ids) :]
            old = listed.alerts[0].cursor

            async def gone() -> bool:
                left = await stubs.telemetry.ListAlerts(telemetry_pb2.ListAlertsRequest())
                return not left.alerts

            def resume(after: str) -> grpc.aio.UnaryStreamCall:  # type: ignore[type-arg]
                return stubs.telemetry.WatchAlerts(telemetry_pb2.WatchAlertsRequest(after=after))
        else:
            events = [analytics_pb2.TrackEventRequest(event_name="e") for _ in range(5)]
            await stubs.analytics.TrackEvents(analytics_pb2.EventBatch(events=events))
            exported = [
                e async for e in stubs.analytics.ExportEvents(analytics_pb2.ExportEventsRequest())
            ]
            old = exported[0].cursor

            async def gone() -> bool:
                left = [
                    e
                    async for e in stubs.analytics.ExportEvents(analytics_pb2.ExportEventsRequest())
                ]
                # Until all are gone the mark still moves; SQLite keeps its newest row.
                return len(left) == (1 if read_store.startswith("sqlite") else 0)

            def resume(after: str) -> grpc.aio.UnaryStreamCall:  # type: ignore[type-arg]
                return stubs.analytics.ExportEvents(
                    analytics_pb2.ExportEventsRequest(after=after, follow=True)
                )

        await _until(gone)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await resume(old).read()
        assert info.value.code() == grpc.StatusCode.OUT_OF_RANGE
        details = info.value.details() or ""
        assert "retention" in details
        # The message names the oldest position still kept, as a cursor to resume from.
        suggested = details.split("resume from '")[1].split("'")[0]
        call = resume(suggested)
        if kind == "alerts":
            fresh = await stubs.alert()
            got = await call.read()
            assert isinstance(got, telemetry_pb2.Alert)
            assert got.tracking_id == fresh
        else:
            await stubs.analytics.TrackEvent(analytics_pb2.TrackEventRequest(event_name="new"))
            got_event = await call.read()
            assert isinstance(got_event, analytics_pb2.ExportedEvent)
        call.cancel()
