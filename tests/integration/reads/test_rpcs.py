"""ListAlerts, WatchAlerts, QueryEvents and ExportEvents: exact answers, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from eventwire import _status
from eventwire.api import analytics_pb2, telemetry_pb2
from eventwire.runtime.server import Server
from tests.support.reads import BY_PLAN, DAY, HOURLY_BY_NAME, Stubs, dataset

INVALID = grpc.StatusCode.INVALID_ARGUMENT


async def _load(stubs: Stubs) -> None:
    ack = await stubs.analytics.TrackEvents(analytics_pb2.EventBatch(events=dataset()), timeout=5)
    assert ack.accepted == len(dataset())


async def test_list_alerts_pages_through_everything_once(stubs: Stubs) -> None:
    ids = [
        await stubs.alert(f"d{n % 2}", severity=n % 4, message=f"m{n}", attributes={"n": str(n)})
        for n in range(10)
    ]
    pages: list[list[str]] = []
    token = ""
    while True:
        reply = await stubs.telemetry.ListAlerts(
            telemetry_pb2.ListAlertsRequest(page_size=3, page_token=token), timeout=5
        )
        pages.append([a.tracking_id for a in reply.alerts])
        token = reply.next_page_token
        if not token:
            break
    assert [len(p) for p in pages] == [3, 3, 3, 1]
    assert [i for p in pages for i in p] == ids
    first = (await stubs.telemetry.ListAlerts(telemetry_pb2.ListAlertsRequest(), timeout=5)).alerts
    assert (first[5].message, dict(first[5].attributes), first[5].severity) == ("m5", {"n": "5"}, 1)
    assert len({a.cursor for a in first}) == 10
    critical = await stubs.telemetry.ListAlerts(
        telemetry_pb2.ListAlertsRequest(
            device_id="d1", min_severity=telemetry_pb2.SEVERITY_CRITICAL
        )
    )
    assert [a.tracking_id for a in critical.alerts] == [ids[3], ids[7]]
    got = await stubs.telemetry.GetAlert(telemetry_pb2.GetAlertRequest(tracking_id=ids[2]))
    assert (got.severity, got.message) == (telemetry_pb2.SEVERITY_WARNING, "m2")


async def test_watch_delivers_live_then_resumes_after_its_cursor(stubs: Stubs) -> None:
    # from_start on an empty store: nothing is missed if the call opens late.
    live = stubs.telemetry.WatchAlerts(telemetry_pb2.WatchAlertsRequest(from_start=True))
    first = [await stubs.alert() for _ in range(3)]
    got = await stubs.take(live, 3)
    assert [a.tracking_id for a in got] == first
    live.cancel()
    missed = [await stubs.alert() for _ in range(4)]
    resumed = stubs.telemetry.WatchAlerts(telemetry_pb2.WatchAlertsRequest(after=got[-1].cursor))
    again = await stubs.take(resumed, 4)
    assert [a.tracking_id for a in again] == missed
    later = await stubs.alert()
    assert [a.tracking_id for a in await stubs.take(resumed, 1)] == [later]
    resumed.cancel()
    everything = stubs.telemetry.WatchAlerts(telemetry_pb2.WatchAlertsRequest(from_start=True))
    assert [a.tracking_id for a in await stubs.take(everything, 8)] == [*first, *missed, later]
    everything.cancel()


async def test_watch_filters(
    stubs: Stubs,
) -> None:
    call = stubs.telemetry.WatchAlerts(
        telemetry_pb2.WatchAlertsRequest(
            device_id="boiler", min_severity=telemetry_pb2.SEVERITY_WARNING, from_start=True
        )
    )
    wanted = []
    for n in range(12):
        device = "boiler" if n % 2 else "fan"
        tracking_id = await stubs.alert(device, severity=n % 4)
        if device == "boiler" and n % 4 >= 2:
            wanted.append(tracking_id)
    got = await stubs.take(call, len(wanted))
    assert [a.tracking_id for a in got] == wanted
    assert all(a.device_id == "boiler" for a in got)
    call.cancel()


async def test_query_events_counts_exactly(stubs: Stubs) -> None:
    await _load(stubs)
    hourly = await stubs.analytics.QueryEvents(
        analytics_pb2.QueryEventsRequest(
            start=DAY, end=DAY + 86_400_000, bucket=analytics_pb2.BUCKET_HOUR, group_by="event_name"
        )
    )
    rows = [(r.bucket_start, r.group, r.count, r.distinct_users) for r in hourly.rows]
    assert rows == HOURLY_BY_NAME
    plans = await stubs.analytics.QueryEvents(
        analytics_pb2.QueryEventsRequest(group_by="properties.plan")
    )
    assert [(r.bucket_start, r.group, r.count, r.distinct_users) for r in plans.rows] == BY_PLAN
    daily = await stubs.analytics.QueryEvents(
        analytics_pb2.QueryEventsRequest(event_name="view", bucket=analytics_pb2.BUCKET_DAY)
    )
    assert [(r.bucket_start, r.group, r.count, r.distinct_users) for r in daily.rows] == [
        (DAY, "", 6, 4)
    ]
    top = await stubs.analytics.QueryEvents(
        analytics_pb2.QueryEventsRequest(group_by="user_id", limit=2)
    )
    assert [(r.group, r.count) for r in top.rows] == [("u1", 4), ("u2", 2)]


async def test_export_gives_every_event_once_and_resumes(stubs: Stubs) -> None:
    await _load(stubs)
    exported = [e async for e in stubs.analytics.ExportEvents(analytics_pb2.ExportEventsRequest())]
    assert [e.event.event_id for e in exported] == [e.event_id for e in dataset()]
    assert exported[0].event == dataset()[0]
    assert all(e.received_at > 0 for e in exported)
    rest = [
        e.event.event_id
        async for e in stubs.analytics.ExportEvents(
            analytics_pb2.ExportEventsRequest(after=exported[3].cursor)
        )
    ]
    assert rest == [e.event_id for e in dataset()[4:]]
    views = [
        e.event.event_id
        async for e in stubs.analytics.ExportEvents(
            analytics_pb2.ExportEventsRequest(
                event_name="view", start=DAY + 1, end=DAY + 4 * 3_600_000
            )
        )
    ]
    assert views == ["ev-03", "ev-04"]


async def test_export_follow_tails_new_commits(stubs: Stubs) -> None:
    await _load(stubs)
    call = stubs.analytics.ExportEvents(analytics_pb2.ExportEventsRequest(follow=True))
    backlog = [await call.read() for _ in range(len(dataset()))]
    assert len({e.cursor for e in backlog if isinstance(e, analytics_pb2.ExportedEvent)}) == 10
    await stubs.analytics.TrackEvent(analytics_pb2.TrackEventRequest(event_name="late"))
    late = await call.read()
    assert isinstance(late, analytics_pb2.ExportedEvent)
    assert late.event.event_name == "late"
    assert late.event.event_id
    call.cancel()


def _field_of(err: grpc.aio.AioRpcError) -> list[str]:
    return [field for field, _ in _status.field_violations(err)]


async def _finish(call: object) -> None:
    """Await a unary call, or read a stream to its end."""
    if isinstance(call, grpc.aio.UnaryStreamCall):
        while True:
            await call.read()
    await call  # type: ignore[misc]


async def _refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _finish(call)
    return info.value


async def test_bad_input_names_the_field(stubs: Stubs) -> None:
    await stubs.alert()
    first = (await stubs.telemetry.ListAlerts(telemetry_pb2.ListAlertsRequest())).alerts[0]
    t, a = stubs.telemetry, stubs.analytics
    cases = [
        (a.QueryEvents(analytics_pb2.QueryEventsRequest(group_by="country")), "group_by"),
        (a.QueryEvents(analytics_pb2.QueryEventsRequest(group_by="properties.")), "group_by"),
        (a.QueryEvents(analytics_pb2.QueryEventsRequest(start=5, end=5)), "end"),
        (a.QueryEvents(analytics_pb2.QueryEventsRequest(limit=10_001)), "limit"),
        (a.QueryEvents(analytics_pb2.QueryEventsRequest(bucket=9)), "bucket"),  # type: ignore[arg-type]
        (t.ListAlerts(telemetry_pb2.ListAlertsRequest(page_size=1001)), "page_size"),
        (t.ListAlerts(telemetry_pb2.ListAlertsRequest(page_size=-1)), "page_size"),
        (t.ListAlerts(telemetry_pb2.ListAlertsRequest(start=9, end=3)), "end"),
        (t.ListAlerts(telemetry_pb2.ListAlertsRequest(page_token="bad")), "page_token"),  # noqa: S106
        (t.ListAlerts(telemetry_pb2.ListAlertsRequest(min_severity=7)), "min_severity"),  # type: ignore[arg-type]
        # A cursor is not a page token, and a cursor of one filter fits no other.
        (t.ListAlerts(telemetry_pb2.ListAlertsRequest(page_token=first.cursor)), "page_token"),
        (t.WatchAlerts(telemetry_pb2.WatchAlertsRequest(after="%%%")), "after"),
        (t.WatchAlerts(telemetry_pb2.WatchAlertsRequest(after=first.cursor[:-2])), "after"),
        (
            t.WatchAlerts(telemetry_pb2.WatchAlertsRequest(after=first.cursor, device_id="x")),
            "after",
        ),
        (
            t.WatchAlerts(telemetry_pb2.WatchAlertsRequest(after=first.cursor, from_start=True)),
            "from_start",
        ),
        (a.ExportEvents(analytics_pb2.ExportEventsRequest(after=first.cursor)), "after"),
        (a.ExportEvents(analytics_pb2.ExportEventsRequest(start=7, end=2)), "end"),
        (
            t.ReportAlert(
                telemetry_pb2.AlertRequest(
                    device_id="d",
                    alert_type="t",
                    severity=4,  # type: ignore[arg-type]
                )
            ),
            "severity",
        ),
        (
            t.ReportAlert(
                telemetry_pb2.AlertRequest(device_id="d", alert_type="t", message="x" * 5000)
            ),
            "message",
        ),
    ]
    for call, field in cases:
        err = await _refused(call)
        assert err.code() == INVALID, (field, err.details())
        assert field in _field_of(err), (field, err.details())
    # The very same cursor, with its own filter, is fine.
    ok = t.WatchAlerts(telemetry_pb2.WatchAlertsRequest(after=first.cursor))
    second = await stubs.alert()
    assert (await stubs.take(ok, 1))[0].tracking_id == second
    ok.cancel()


async def test_draining_ends_watches_with_unavailable(read_server: Server, stubs: Stubs) -> None:
    watch = stubs.telemetry.WatchAlerts(telemetry_pb2.WatchAlertsRequest(from_start=True))
    follow = stubs.analytics.ExportEvents(analytics_pb2.ExportEventsRequest(follow=True))
    await stubs.alert()
    await stubs.take(watch, 1)
    stopping = asyncio.create_task(read_server.stop(grace=30))
    for call in (watch, follow):
        err = await _refused(call)
        assert err.code() == grpc.StatusCode.UNAVAILABLE
        assert "shutting down" in (err.details() or "")
    await stopping
