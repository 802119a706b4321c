"""Token auth and tenant isolation, on every RPC and every route.

Each RPC and route is called with no token, malformed ones, an unknown one and
one lacking the scope; every call is refused with the right status and not a
single row is written. Tenants see only their own data.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from eventwire._rpc import OPERATIONS, READ
from eventwire.api import analytics_pb2, analytics_pb2_grpc, telemetry_pb2, telemetry_pb2_grpc
from eventwire.frontends.grpc.auth import READ_METHODS as READS
from eventwire.runtime.server import Server
from tests.support.doors import DOORS, call, http_status_of_error
from tests.support.security import (
    ACME,
    ACME_READER,
    ACME_WRITER,
    GLOBEX,
    UNKNOWN,
    Leaks,
    bearer,
    rows,
    spawn,
    token,
    token_file_text,
)

Metadata = tuple[tuple[str, str], ...] | None

Call = Callable[[grpc.aio.Channel, Metadata], Awaitable[Any]]

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED

PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED


def _event(event_id: str = "") -> analytics_pb2.TrackEventRequest:
    return analytics_pb2.TrackEventRequest(event_name="e", event_id=event_id)


async def _ingest(ch: grpc.aio.Channel, md: Metadata) -> list[analytics_pb2.IngestAck]:
    call = analytics_pb2_grpc.AnalyticsServiceStub(ch).IngestEvents(
        iter([analytics_pb2.EventBatch(events=[_event()], sequence=1)]), metadata=md, timeout=5
    )
    return [ack async for ack in call]


async def _watch(ch: grpc.aio.Channel, md: Metadata) -> telemetry_pb2.Alert:
    call = telemetry_pb2_grpc.TelemetryServiceStub(ch).WatchAlerts(
        telemetry_pb2.WatchAlertsRequest(from_start=True), metadata=md, timeout=5
    )
    try:
        alert = await call.read()
    finally:
        call.cancel()
    assert isinstance(alert, telemetry_pb2.Alert)
    return alert


async def _export(ch: grpc.aio.Channel, md: Metadata) -> tuple[str, int]:
    call = analytics_pb2_grpc.AnalyticsServiceStub(ch).ExportEvents(
        analytics_pb2.ExportEventsRequest(), metadata=md, timeout=5
    )
    return "served", len([event async for event in call])


RPCS: dict[str, Call] = {
    "TrackEvent": lambda ch, md: analytics_pb2_grpc.AnalyticsServiceStub(ch).TrackEvent(
        _event(), metadata=md, timeout=5
    ),
    "StreamEvents": lambda ch, md: analytics_pb2_grpc.AnalyticsServiceStub(ch).StreamEvents(
        iter([_event(), _event()]), metadata=md, timeout=5
    ),
    "TrackEvents": lambda ch, md: analytics_pb2_grpc.AnalyticsServiceStub(ch).TrackEvents(
        analytics_pb2.EventBatch(events=[_event()]), metadata=md, timeout=5
    ),
    "IngestEvents": _ingest,
    "CountEvents": lambda ch, md: analytics_pb2_grpc.AnalyticsServiceStub(ch).CountEvents(
        analytics_pb2.CountEventsRequest(), metadata=md, timeout=5
    ),
    "ReportAlert": lambda ch, md: telemetry_pb2_grpc.TelemetryServiceStub(ch).ReportAlert(
        telemetry_pb2.AlertRequest(device_id="d", alert_type="t"), metadata=md, timeout=5
    ),
    "GetAlert": lambda ch, md: telemetry_pb2_grpc.TelemetryServiceStub(ch).GetAlert(
        telemetry_pb2.GetAlertRequest(tracking_id="0" * 26), metadata=md, timeout=5
    ),
    "ListAlerts": lambda ch, md: telemetry_pb2_grpc.TelemetryServiceStub(ch).ListAlerts(
        telemetry_pb2.ListAlertsRequest(), metadata=md, timeout=5
    ),
    # Served after ReportAlert, so a watch from the start has an alert to show.
    "WatchAlerts": _watch,
    "QueryEvents": lambda ch, md: analytics_pb2_grpc.AnalyticsServiceStub(ch).QueryEvents(
        analytics_pb2.QueryEventsRequest(), metadata=md, timeout=5
    ),
    "ExportEvents": _export,
}


MALFORMED = [
    f"Basic {ACME}",
    "Bearer",
    "Bearer ",
    f"Bearer  {ACME}",
    f"{ACME}",
    f"Bearer {ACME} extra",
    f"Token {ACME}",
]


async def _refusal(call: Call, ch: grpc.aio.Channel, md: Metadata) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call(ch, md)
    return info.value


async def test_every_rpc_refuses_missing_malformed_unknown_and_unscoped_tokens(
    secured: Server, leaks: Leaks
) -> None:
    before = rows(secured.config.store)
    async with grpc.aio.insecure_channel(secured.address) as ch:
        for name, call in RPCS.items():
            cases: list[tuple[Metadata, grpc.StatusCode]] = [(None, UNAUTHENTICATED)]
            cases += [((("authorization", bad),), UNAUTHENTICATED) for bad in MALFORMED]
            cases.append((bearer(UNKNOWN), UNAUTHENTICATED))
            # Two authorization entries: ambiguous, refused even if one is good.
            cases.append(((*bearer(ACME), *bearer(UNKNOWN)), UNAUTHENTICATED))
            unscoped = ACME_WRITER if name in READS else ACME_READER
            cases.append((bearer(unscoped), PERMISSION_DENIED))
            for md, code in cases:
                err = await _refusal(call, ch, md)
                assert err.code() == code, (name, md and md[0][1][:12], err)
                leaks.add(err.details(), err.debug_error_string())
    assert rows(secured.config.store) == before


async def test_every_rpc_serves_a_token_with_the_scope(secured: Server) -> None:
    async with grpc.aio.insecure_channel(secured.address) as ch:
        for name, call in RPCS.items():
            if name == "GetAlert":
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await call(ch, bearer(ACME_READER))
                assert info.value.code() == grpc.StatusCode.NOT_FOUND
                continue
            scoped = ACME_READER if name in READS else ACME_WRITER
            assert await call(ch, bearer(scoped))


async def test_tenants_see_only_their_own_data_and_dedupe_apart(secured: Server) -> None:
    async with grpc.aio.insecure_channel(secured.address) as ch:
        analytics = analytics_pb2_grpc.AnalyticsServiceStub(ch)
        telemetry = telemetry_pb2_grpc.TelemetryServiceStub(ch)
        # The same event id in two tenants is two events, neither a duplicate.
        for tok in (GLOBEX, ACME):
            reply = await analytics.TrackEvent(_event("shared-id"), metadata=bearer(tok))
            assert not reply.duplicate
        again = await analytics.TrackEvent(_event("shared-id"), metadata=bearer(GLOBEX))
        assert again.duplicate
        await analytics.TrackEvents(
            analytics_pb2.EventBatch(events=[_event(f"g{i}") for i in range(5)]),
            metadata=bearer(GLOBEX),
        )
        count = analytics_pb2.CountEventsRequest()
        assert (await analytics.CountEvents(count, metadata=bearer(ACME))).count == 1
        assert (await analytics.CountEvents(count, metadata=bearer(GLOBEX))).count == 6

        alert = telemetry_pb2.AlertRequest(device_id="d", alert_type="t", idempotency_key="k")
        theirs = await telemetry.ReportAlert(alert, metadata=bearer(GLOBEX))
        ours = await telemetry.ReportAlert(alert, metadata=bearer(ACME))
        assert ours.tracking_id != theirs.tracking_id  # idempotency keys are per tenant too
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await telemetry.GetAlert(
                telemetry_pb2.GetAlertRequest(tracking_id=theirs.tracking_id),
                metadata=bearer(ACME),
            )
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        mine = await telemetry.GetAlert(
            telemetry_pb2.GetAlertRequest(tracking_id=ours.tracking_id), metadata=bearer(ACME)
        )
        assert mine.tracking_id == ours.tracking_id


async def test_health_stays_open_and_reflection_needs_a_token(secured: Server) -> None:
    async with grpc.aio.insecure_channel(secured.address) as ch:
        health: Any = health_pb2_grpc.HealthStub(ch)
        for service in ("", "liveness", "analytics.AnalyticsService"):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=5)
        first = await watch.read()
        assert first.status == health_pb2.HealthCheckResponse.SERVING
        watch.cancel()

        stub: Any = reflection_pb2_grpc.ServerReflectionStub(cast(Any, ch))
        ask = reflection_pb2.ServerReflectionRequest(list_services="")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in stub.ServerReflectionInfo(iter([ask]), timeout=5):
                pass
        assert info.value.code() == UNAUTHENTICATED
        replies = [
            r async for r in stub.ServerReflectionInfo(iter([ask]), metadata=bearer(ACME_READER))
        ]
        names = {s.name for s in replies[0].list_services_response.service}
        assert "analytics.AnalyticsService" in names


SAMPLES: dict[str, dict[str, Any]] = {
    "TrackEvent": {"event_name": "e"},
    "StreamEvents": {"event_name": "e"},
    "TrackEvents": {"events": [{"event_name": "e"}]},
    "IngestEvents": {"events": [{"event_name": "e"}]},
    "ReportAlert": {"device_id": "d", "alert_type": "t"},
    "GetAlert": {"tracking_id": "0" * 26},
}
"""A request for each operation that needs more than an empty one."""


def _operations(door: str) -> list[tuple[str, str]]:
    """``(method name, scope)`` of every operation ``door`` serves: the JSON door
    serves those with a route, the others every one."""
    return [
        (op.method.rpartition("/")[2], op.scope) for op in OPERATIONS if door != "json" or op.routes
    ]


@pytest.mark.parametrize("door", DOORS)
async def test_every_route_refuses_bad_credentials_and_writes_nothing(
    secured: Server, leaks: Leaks, door: str
) -> None:
    before = rows(secured.config.store)
    base = f"http://127.0.0.1:{secured.http_port}"
    async with httpx.AsyncClient(base_url=base, timeout=5) as http:
        for name, scope in _operations(door):
            cases: list[tuple[list[tuple[str, str]], int]] = [([], 401)]
            # HTTP clients refuse to send a header value with trailing spaces.
            cases += [([("authorization", bad)], 401) for bad in MALFORMED if bad == bad.strip()]
            cases.append(([("authorization", f"Bearer {UNKNOWN}")], 401))
            twice = [("authorization", f"Bearer {ACME}"), ("authorization", f"Bearer {ACME}")]
            cases.append((twice, 401))
            unscoped = ACME_WRITER if scope == READ else ACME_READER
            cases.append(([("authorization", f"Bearer {unscoped}")], 403))
            for headers, status in cases:
                out = await call(http, door, name, SAMPLES.get(name, {}), headers)
                assert out.code == (16 if status == 401 else 7), (name, out.text)
                assert out.http_status == http_status_of_error(door, name, status), (name, out)
                if status == 401:
                    assert out.headers["www-authenticate"].startswith("Bearer")
                leaks.add(out.text, out.headers)
        for path in ("/healthz", "/readyz", "/openapi.json"):
            assert (await http.get(path)).status_code == 200
    assert rows(secured.config.store) == before


@pytest.mark.parametrize("door", DOORS)
async def test_routes_keep_tenants_apart(secured: Server, door: str) -> None:
    base = f"http://127.0.0.1:{secured.http_port}"
    acme = [("authorization", f"Bearer {ACME}")]
    globex = [("authorization", f"Bearer {GLOBEX}")]
    async with httpx.AsyncClient(base_url=base, timeout=5) as http:
        made = await call(http, door, "ReportAlert", SAMPLES["ReportAlert"], globex)
        tracking_id = {"tracking_id": made.reply["trackingId"]}
        assert (await call(http, door, "GetAlert", tracking_id, acme)).code == 5
        assert (await call(http, door, "GetAlert", tracking_id, globex)).code == 0
        event = {"event_name": "e", "event_id": "x"}
        await call(http, door, "TrackEvent", event, globex)
        mine = await call(http, door, "TrackEvent", event, acme)
        assert mine.reply.get("duplicate", False) is False
        counted = await call(http, door, "CountEvents", {}, acme)
        assert counted.reply["count"] == "1"


async def test_sighup_reloads_tokens_without_dropping_connections(
    tmp_path: Path, leaks: Leaks
) -> None:
    old, new = token("before-reload"), token("after-reload")
    tokens = tmp_path / "tokens"
    tokens.write_text(token_file_text({old: ("acme", "write,read")}))
    proc = spawn(leaks, "--store", f"sqlite:///{tmp_path / 'e.db'}", "--auth-tokens", str(tokens))
    proc.start()
    try:
        async with grpc.aio.insecure_channel(proc.address) as ch:
            analytics = analytics_pb2_grpc.AnalyticsServiceStub(ch)
            # An ack proves the server authenticated the stream before the reload.
            stream = analytics.IngestEvents(metadata=bearer(old), timeout=30)
            await stream.write(analytics_pb2.EventBatch(events=[_event("kept-1")], sequence=1))
            first: Any = await stream.read()
            assert first.accepted == 1

            tokens.write_text(token_file_text({new: ("acme", "write,read")}))
            await _reload(proc, reloads=1)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await analytics.TrackEvent(_event(), metadata=bearer(old), timeout=5)
            assert info.value.code() == UNAUTHENTICATED
            assert (await analytics.TrackEvent(_event(), metadata=bearer(new), timeout=5)).success

            # A broken file is refused; the tokens in force stay in force.
            tokens.write_text("not a token file\n")
            await _reload(proc, reloads=1, failures=1)
            assert (await analytics.TrackEvent(_event(), metadata=bearer(new), timeout=5)).success

            # The stream opened before the reloads, on the same connection, carries on.
            await stream.write(analytics_pb2.EventBatch(events=[_event("kept-2")], sequence=2))
            ack: Any = await stream.read()
            assert (ack.sequence, ack.accepted) == (2, 1)
            await stream.done_writing()
            assert await stream.code() == grpc.StatusCode.OK
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait)


async def _reload(proc: Any, *, reloads: int, failures: int = 0) -> None:
    import os
    import signal
    import time

    def counts() -> tuple[int, int]:
        msgs = [str(line.get("msg", "")) for line in proc.logs]
        return (
            sum(m == "auth tokens reloaded" for m in msgs),
            sum(m.startswith("auth tokens not reloaded") for m in msgs),
        )

    done, failed = counts()
    os.kill(proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + 10
    while counts() < (done + reloads - failures, failed + failures):
        assert time.monotonic() < deadline, proc.logs[-3:]
        await asyncio.sleep(0.02)
