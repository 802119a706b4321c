"""Reads see the caller's tenant only; a cursor works only for its own tenant and filter."""

from __future__ import annotations

from typing import Any, cast

import grpc
import httpx
import pytest

from eventwire import _status
from eventwire.api import analytics_pb2, analytics_pb2_grpc, telemetry_pb2, telemetry_pb2_grpc
from eventwire.runtime.server import Server
from tests.support.security import ACME, ACME_WRITER, GLOBEX, bearer


async def test_every_read_sees_only_the_callers_tenant(secured: Server) -> None:
    async with grpc.aio.insecure_channel(secured.address) as ch:
        analytics = analytics_pb2_grpc.AnalyticsServiceStub(ch)
        telemetry = telemetry_pb2_grpc.TelemetryServiceStub(ch)
        for tok, count in ((GLOBEX, 3), (ACME, 2)):
            for n in range(count):
                await telemetry.ReportAlert(
                    telemetry_pb2.AlertRequest(device_id=f"d{n}", alert_type="t"),
                    metadata=bearer(tok),
                )
            events = [analytics_pb2.TrackEventRequest(event_name="e") for _ in range(count)]
            await analytics.TrackEvents(
                analytics_pb2.EventBatch(events=events), metadata=bearer(tok)
            )

        listed = await telemetry.ListAlerts(
            telemetry_pb2.ListAlertsRequest(page_size=1), metadata=bearer(ACME)
        )
        assert len(listed.alerts) == 1
        rest = await telemetry.ListAlerts(
            telemetry_pb2.ListAlertsRequest(page_size=5, page_token=listed.next_page_token),
            metadata=bearer(ACME),
        )
        assert [a.device_id for a in [*listed.alerts, *rest.alerts]] == ["d0", "d1"]
        watch = telemetry.WatchAlerts(
            telemetry_pb2.WatchAlertsRequest(from_start=True), metadata=bearer(ACME)
        )
        seen = [await watch.read() for _ in range(2)]
        assert all(isinstance(alert, telemetry_pb2.Alert) for alert in seen)
        await telemetry.ReportAlert(
            telemetry_pb2.AlertRequest(device_id="later-globex", alert_type="t"),
            metadata=bearer(GLOBEX),
        )
        await telemetry.ReportAlert(
            telemetry_pb2.AlertRequest(device_id="later-acme", alert_type="t"),
            metadata=bearer(ACME),
        )
        nxt = await watch.read()
        assert isinstance(nxt, telemetry_pb2.Alert)
        assert nxt.device_id == "later-acme"  # globex's alert in between never showed
        watch.cancel()
        exported = [
            e
            async for e in analytics.ExportEvents(
                analytics_pb2.ExportEventsRequest(), metadata=bearer(ACME)
            )
        ]
        assert len(exported) == 2
        rows = await analytics.QueryEvents(
            analytics_pb2.QueryEventsRequest(), metadata=bearer(ACME)
        )
        assert [(r.group, r.count) for r in rows.rows] == [("", 2)]

        # Acme's cursor and page token, with the very same filter, mean nothing to globex.
        refusals: list[grpc.aio.UnaryStreamCall[Any, Any]] = [
            telemetry.WatchAlerts(
                telemetry_pb2.WatchAlertsRequest(after=cast(telemetry_pb2.Alert, seen[0]).cursor),
                metadata=bearer(GLOBEX),
            ),
            analytics.ExportEvents(
                analytics_pb2.ExportEventsRequest(after=exported[0].cursor),
                metadata=bearer(GLOBEX),
            ),
        ]
        for call in refusals:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call.read()
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert [f for f, _ in _status.field_violations(info.value)] == ["after"]
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await telemetry.ListAlerts(
                telemetry_pb2.ListAlertsRequest(page_size=1, page_token=listed.next_page_token),
                metadata=bearer(GLOBEX),
            )
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        # A write-only token reads nothing.
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await telemetry.ListAlerts(
                telemetry_pb2.ListAlertsRequest(), metadata=bearer(ACME_WRITER)
            )
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_gateway_reads_are_tenant_scoped_and_need_the_read_scope(secured: Server) -> None:
    base = f"http://127.0.0.1:{secured.http_port}"
    acme, globex = {"authorization": f"Bearer {ACME}"}, {"authorization": f"Bearer {GLOBEX}"}
    async with httpx.AsyncClient(base_url=base, timeout=5) as http:
        await http.post("/v1/alerts", json={"deviceId": "g", "alertType": "t"}, headers=globex)
        await http.post("/v1/alerts", json={"deviceId": "a", "alertType": "t"}, headers=acme)
        mine = (await http.get("/v1/alerts", headers=acme)).json()
        assert [a["deviceId"] for a in mine["alerts"]] == ["a"]
        cursor = mine["alerts"][0]["cursor"]
        theirs = await http.get("/v1/alerts:watch", params={"after": cursor}, headers=globex)
        assert theirs.status_code == 400
        assert theirs.json()["details"][0]["fieldViolations"][0]["field"] == "after"
        writer = {"authorization": f"Bearer {ACME_WRITER}"}
        for path in ("/v1/alerts", "/v1/alerts:watch", "/v1/events:query", "/v1/events:export"):
            assert (await http.get(path, headers=writer)).status_code == 403
