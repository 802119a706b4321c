"""Every RPC of both services against a real server and a real SQLite file."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any, TypeAlias

import grpc
import pytest
from google.protobuf import json_format

from eventwire import _status
from eventwire.api import analytics_pb2, analytics_pb2_grpc, telemetry_pb2, telemetry_pb2_grpc
from eventwire.runtime.server import Server
from tests.conftest import refuse_inserts
from tests.support.bad_inputs import CASES, NOW_MS, BadInput

Analytics: TypeAlias = "analytics_pb2_grpc.AnalyticsServiceAsyncStub"
Telemetry: TypeAlias = "telemetry_pb2_grpc.TelemetryServiceAsyncStub"


def event(name: str = "signup", **fields: object) -> analytics_pb2.TrackEventRequest:
    return analytics_pb2.TrackEventRequest(event_name=name, **fields)  # type: ignore[arg-type]


def rows(db_url: str, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db_url.removeprefix("sqlite:///")) as conn:
        return conn.execute(sql).fetchall()


async def count(analytics: Analytics, **filters: object) -> int:
    reply = await analytics.CountEvents(analytics_pb2.CountEventsRequest(**filters))  # type: ignore[arg-type]
    return reply.count


async def test_track_event_is_stored_with_every_field(analytics: Analytics, db_url: str) -> None:
    reply = await analytics.TrackEvent(
        event("signup", user_id="u1", timestamp=NOW_MS - 5000, properties={"plan": "pro"})
    )
    assert reply.success
    assert reply.error_message == ""
    assert not reply.duplicate
    assert uuid.UUID(reply.event_id).version == 7
    stored = rows(db_url, "SELECT event_id, event_name, user_id, ts, properties FROM events")
    assert stored == [(reply.event_id, "signup", "u1", NOW_MS - 5000, '{"plan":"pro"}')]


async def test_timestamp_zero_means_receive_time(analytics: Analytics, db_url: str) -> None:
    # The clock around the call, not NOW_MS: that is taken when the module is
    # collected, which may be many minutes before this test runs.
    before = time.time_ns() // 1_000_000
    await analytics.TrackEvent(event())
    after = time.time_ns() // 1_000_000
    ((ts, received),) = rows(db_url, "SELECT ts, received_at FROM events")
    assert ts == received
    assert before <= int(str(ts)) <= after


async def test_same_event_id_is_stored_once(analytics: Analytics, db_url: str) -> None:
    first = await analytics.TrackEvent(event(event_id="evt-1"))
    again = await analytics.TrackEvent(event("other-name", event_id="evt-1"))
    assert (first.success, first.duplicate) == (True, False)
    assert (again.success, again.duplicate, again.event_id) == (True, True, "evt-1")
    assert rows(db_url, "SELECT event_id, event_name FROM events") == [("evt-1", "signup")]


async def test_concurrent_calls_with_one_id_store_one_row(
    analytics: Analytics, db_url: str
) -> None:
    replies = await asyncio.gather(
        *(analytics.TrackEvent(event(event_id="same")) for _ in range(50))
    )
    assert all(r.success for r in replies)
    assert sum(not r.duplicate for r in replies) == 1
    assert rows(db_url, "SELECT count(*) FROM events") == [(1,)]


async def test_many_concurrent_calls_are_all_committed(analytics: Analytics) -> None:
    replies = await asyncio.gather(
        *(analytics.TrackEvent(event(user_id=f"u{i % 7}")) for i in range(300))
    )
    assert all(r.success and not r.duplicate for r in replies)
    assert len({r.event_id for r in replies}) == 300
    assert await count(analytics) == 300
    assert await count(analytics, user_id="u3") == len([i for i in range(300) if i % 7 == 3])


async def test_stream_events_stores_the_whole_stream(analytics: Analytics) -> None:
    events = [event("view", event_id=f"s-{i}") for i in range(25)]
    reply = await analytics.StreamEvents(iter(events))
    assert (reply.success, reply.accepted, reply.duplicates) == (True, 25, 0)
    assert await count(analytics, event_name="view") == 25


async def test_resent_stream_is_acknowledged_but_not_stored_twice(analytics: Analytics) -> None:
    events = [event("view", event_id=f"r-{i}") for i in range(10)]
    await analytics.StreamEvents(iter(events[:4]))  # a first attempt that got through in part
    reply = await analytics.StreamEvents(iter(events))
    assert (reply.success, reply.accepted, reply.duplicates) == (True, 6, 4)
    assert await count(analytics) == 10


async def test_duplicates_inside_one_stream_count_once(analytics: Analytics) -> None:
    reply = await analytics.StreamEvents(iter([event(event_id="d"), event(event_id="d")]))
    assert (reply.accepted, reply.duplicates) == (1, 1)


async def test_empty_stream_succeeds_and_stores_nothing(analytics: Analytics) -> None:
    reply = await analytics.StreamEvents(iter([]))
    assert (reply.success, reply.accepted, reply.duplicates) == (True, 0, 0)
    assert await count(analytics) == 0


async def test_stream_with_an_invalid_event_stores_nothing(analytics: Analytics) -> None:
    events = [event("ok"), event("ok"), event(""), event("ok")]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await analytics.StreamEvents(iter(events))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = _status.field_violations(info.value)
    assert violations[0][0] == "stream[2].event_name"
    assert await count(analytics) == 0


async def test_cancelled_stream_stores_nothing(analytics: Analytics) -> None:
    call = analytics.StreamEvents()
    await call.write(event("partial"))
    await call.write(event("partial"))
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    # A call that completes after the cancellation proves the server moved on.
    await analytics.TrackEvent(event("after"))
    assert await count(analytics) == 1
    assert await count(analytics, event_name="partial") == 0


async def test_stream_past_its_deadline_stores_nothing(analytics: Analytics) -> None:
    call = analytics.StreamEvents(timeout=0.3)
    await call.write(event("slow"))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # never half-closed: the deadline expires mid-stream
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await analytics.TrackEvent(event("after"))
    assert await count(analytics, event_name="slow") == 0


async def test_stream_longer_than_the_limit_is_refused(tmp_path: Path) -> None:
    from eventwire.testing import running_server

    async with (
        running_server(store=f"sqlite:///{tmp_path / 'e.db'}", max_stream_events=3) as srv,
        grpc.aio.insecure_channel(srv.address) as ch,
    ):
        stub = analytics_pb2_grpc.AnalyticsServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.StreamEvents(iter([event()] * 4))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "at most 3 events" in (info.value.details() or "")
        assert (await stub.CountEvents(analytics_pb2.CountEventsRequest())).count == 0


async def test_count_events_filters(analytics: Analytics) -> None:
    base = NOW_MS - 100_000
    for i in range(10):
        await analytics.TrackEvent(
            event("a" if i % 2 else "b", user_id=f"u{i % 3}", timestamp=base + i)
        )
    assert await count(analytics) == 10
    assert await count(analytics, event_name="a") == 5
    assert await count(analytics, user_id="u0") == 4
    assert await count(analytics, event_name="b", user_id="u0") == 2
    assert await count(analytics, start=base + 3, end=base + 7) == 4
    assert await count(analytics, start=base + 8) == 2
    assert await count(analytics, end=base + 1) == 1
    assert await count(analytics, event_name="missing") == 0


async def test_report_alert_and_get_it_back(telemetry: Telemetry) -> None:
    reply = await telemetry.ReportAlert(
        telemetry_pb2.AlertRequest(device_id="dev-1", alert_type="overheat", timestamp=NOW_MS)
    )
    assert reply.acknowledged
    assert uuid.UUID(reply.tracking_id).version == 4
    alert = await telemetry.GetAlert(telemetry_pb2.GetAlertRequest(tracking_id=reply.tracking_id))
    assert (alert.tracking_id, alert.device_id, alert.alert_type, alert.timestamp) == (
        reply.tracking_id,
        "dev-1",
        "overheat",
        NOW_MS,
    )
    assert alert.received_at >= NOW_MS


async def test_tracking_ids_are_unique(telemetry: Telemetry) -> None:
    replies = await asyncio.gather(
        *(
            telemetry.ReportAlert(telemetry_pb2.AlertRequest(device_id="d", alert_type="t"))
            for _ in range(100)
        )
    )
    assert len({r.tracking_id for r in replies}) == 100


async def test_idempotency_key_returns_the_first_tracking_id(
    telemetry: Telemetry, db_url: str
) -> None:
    req = telemetry_pb2.AlertRequest(device_id="d", alert_type="t", idempotency_key="k-1")
    first, second = await asyncio.gather(telemetry.ReportAlert(req), telemetry.ReportAlert(req))
    third = await telemetry.ReportAlert(req)
    assert first.tracking_id == second.tracking_id == third.tracking_id
    assert rows(db_url, "SELECT count(*) FROM alerts") == [(1,)]


async def test_unknown_tracking_id_is_not_found(telemetry: Telemetry) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await telemetry.GetAlert(telemetry_pb2.GetAlertRequest(tracking_id=str(uuid.uuid4())))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_bad_input_is_invalid_argument_naming_the_field(
    case: BadInput, analytics: Analytics, telemetry: Telemetry, db_url: str
) -> None:
    stubs: dict[str, tuple[object, type]] = {
        "TrackEvent": (analytics.TrackEvent, analytics_pb2.TrackEventRequest),
        "CountEvents": (analytics.CountEvents, analytics_pb2.CountEventsRequest),
        "ReportAlert": (telemetry.ReportAlert, telemetry_pb2.AlertRequest),
        "GetAlert": (telemetry.GetAlert, telemetry_pb2.GetAlertRequest),
    }
    method, message_type = stubs[case.method]
    request = json_format.ParseDict(case.request, message_type())
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await method(request)  # type: ignore[operator]
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = _status.field_violations(info.value)
    assert violations, "INVALID_ARGUMENT must carry google.rpc.BadRequest details"
    field, description = violations[0]
    assert field == case.field
    assert case.fragment in description
    assert case.field in (info.value.details() or "")
    assert rows(db_url, "SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM alerts)") == [
        (0,)
    ]


async def test_unexpected_store_failure_is_internal_without_leaking(
    analytics: Analytics, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A real failure inside the database: a trigger that aborts every insert.
    refuse_inserts(db_url, "secret internal detail")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await analytics.TrackEvent(event(), metadata=(("x-request-id", "req-42"),))
    assert info.value.code() == grpc.StatusCode.INTERNAL
    details = info.value.details() or ""
    assert "secret" not in details
    assert "req-42" in details


async def test_server_reflection_lists_the_services(server: Server) -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    async with grpc.aio.insecure_channel(server.address) as ch:
        stub: Any = reflection_pb2_grpc.ServerReflectionStub(ch)  # type: ignore[arg-type]
        call = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        reply = await call.read()
        assert isinstance(reply, reflection_pb2.ServerReflectionResponse)
        names = {s.name for s in reply.list_services_response.service}
    assert {
        "analytics.AnalyticsService",
        "telemetry.TelemetryService",
        "grpc.health.v1.Health",
    } <= names


async def test_reflection_can_be_switched_off(tmp_path: Path) -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    from eventwire.testing import running_server

    async with (
        running_server(store=f"sqlite:///{tmp_path / 'e.db'}", reflection=False) as srv,
        grpc.aio.insecure_channel(srv.address) as ch,
    ):
        stub: Any = reflection_pb2_grpc.ServerReflectionStub(ch)  # type: ignore[arg-type]
        call = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call.read()
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_a_request_the_database_refuses_fails_alone(
    server: Server, analytics: Analytics, db_url: str
) -> None:
    db = db_url.removeprefix("sqlite:///")
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TRIGGER poison BEFORE INSERT ON events WHEN NEW.event_name = 'poison' "
            "BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
    registry = server.metrics.registry

    async def queued(rows: int) -> None:
        for _ in range(400):
            if (registry.get_sample_value("eventwire_ingest_queue_rows") or 0) >= rows:
                return
            await asyncio.sleep(0.01)
        pytest.fail(f"fewer than {rows} rows queued")

    # Hold the write lock: the writer takes one request and waits on it, and
    # everything sent after that queues up for the next group commit, together.
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        first = asyncio.ensure_future(analytics.TrackEvent(event("first")))
        await queued(1)
        calls = [asyncio.ensure_future(analytics.TrackEvent(event(f"good-{i}"))) for i in range(20)]
        calls.insert(10, asyncio.ensure_future(analytics.TrackEvent(event("poison"))))
        await queued(22)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert (await first).success
    results = await asyncio.gather(*calls, return_exceptions=True)
    failed = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert [e.code() for e in failed] == [grpc.StatusCode.INTERNAL]
    assert isinstance(results[10], grpc.aio.AioRpcError)
    assert rows(db_url, "SELECT count(*) FROM events") == [(21,)]
    # The group holding the poison failed once, then the poison failed alone.
    assert registry.get_sample_value("eventwire_commits_total", {"result": "error"}) == 2
