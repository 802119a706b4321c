"""list_alerts, watch_alerts, query_events and export_events through the SDK.

Exact answers against a known dataset, on SQLite and on PostgreSQL, with the
async clients and with their blocking twins.
"""

from __future__ import annotations

from collections.abc import Callable

import prometheus_client
import pytest

import eventwire.client as ec
from eventwire.api import telemetry_pb2
from eventwire.runtime.server import Server
from tests.integration.client_reads.readers import Readers
from tests.support.reads import BY_PLAN, DAY, HOURLY_BY_NAME, dataset

Make = Callable[..., Readers]


@pytest.fixture
def metrics() -> ec.ClientMetrics:
    return ec.ClientMetrics(prometheus_client.CollectorRegistry())


@pytest.fixture
def reads(read_server: Server, make_readers: Make, metrics: ec.ClientMetrics) -> Readers:
    return make_readers(read_server.address, timeout=5, metrics=metrics)


def _calls(metrics: ec.ClientMetrics, method: str) -> float:
    value = metrics.registry.get_sample_value(
        "eventwire_client_attempts_total", {"method": method, "code": "OK"}
    )
    return value or 0.0


async def _report(reads: Readers, count: int, **fields: object) -> list[str]:
    return [
        (await reads.call(reads.telemetry.report_alert, "d1", "smoke", **fields)).tracking_id
        for _ in range(count)
    ]


async def _load(reads: Readers) -> None:
    ack = await reads.call(reads.analytics.track_events, dataset())
    assert ack.accepted == len(dataset())


async def test_list_alerts_pages_for_you(reads: Readers, metrics: ec.ClientMetrics) -> None:
    ids = []
    for n in range(10):
        reply = await reads.call(
            reads.telemetry.report_alert,
            f"d{n % 2}",
            "smoke",
            severity=n % 4,
            message=f"m{n}",
            attributes={"n": str(n)},
        )
        ids.append(reply.tracking_id)
    listed = await reads.all(reads.telemetry.list_alerts(page_size=3))
    assert [a.tracking_id for a in listed] == ids
    # Four pages of 3, 3, 3 and 1: four calls, the last one's token empty.
    assert _calls(metrics, "/telemetry.TelemetryService/ListAlerts") == 4
    assert (listed[5].message, dict(listed[5].attributes), listed[5].severity) == (
        "m5",
        {"n": "5"},
        telemetry_pb2.SEVERITY_INFO,
    )
    assert len({a.cursor for a in listed}) == 10
    critical = await reads.all(reads.telemetry.list_alerts(device_id="d1", min_severity="critical"))
    assert [a.tracking_id for a in critical] == [ids[3], ids[7]]
    # One page at a time, by hand.
    sizes, token = [], ""
    while True:
        page = await reads.call(reads.telemetry.list_alerts_page, page_size=4, page_token=token)
        sizes.append(len(page.alerts))
        token = page.next_page_token
        if not token:
            break
    assert sizes == [4, 4, 2]
    assert await reads.all(reads.telemetry.list_alerts(device_id="nobody")) == []


async def test_watch_from_start_then_resume_after_its_cursor(reads: Readers) -> None:
    first = await _report(reads, 3, severity="warning")
    stream = reads.telemetry.watch_alerts(min_severity="warning", from_start=True)
    got = await reads.take(stream, 3)
    assert [a.tracking_id for a in got] == first
    assert stream.cursor == got[-1].cursor
    await reads.close_stream(stream)
    missed = await _report(reads, 4, severity="critical")
    await _report(reads, 2, severity="info")  # below the filter
    later = await _report(reads, 1, severity="warning")
    resumed = reads.telemetry.watch_alerts(min_severity="warning", after=got[-1].cursor)
    again = await reads.take(resumed, 5)
    assert [a.tracking_id for a in again] == [*missed, *later]
    assert resumed.reconnects == 0
    await reads.close_stream(resumed)


async def test_query_events_counts_exactly(reads: Readers) -> None:
    await _load(reads)
    hourly = await reads.call(
        reads.analytics.query_events,
        start=DAY,
        end=DAY + 86_400_000,
        bucket="hour",
        group_by="event_name",
    )
    assert [(r.bucket_start, r.group, r.count, r.distinct_users) for r in hourly] == HOURLY_BY_NAME
    plans = await reads.call(reads.analytics.query_events, group_by="properties.plan")
    assert [(r.bucket_start, r.group, r.count, r.distinct_users) for r in plans] == BY_PLAN
    daily = await reads.call(reads.analytics.query_events, "view", bucket="BUCKET_DAY")
    assert [(r.bucket_start, r.group, r.count, r.distinct_users) for r in daily] == [
        (DAY, "", 6, 4)
    ]
    top = await reads.call(reads.analytics.query_events, group_by="user_id", limit=2)
    assert [(r.group, r.count) for r in top] == [("u1", 4), ("u2", 2)]


async def test_export_events_gives_every_event_once_and_resumes(reads: Readers) -> None:
    await _load(reads)
    stream = reads.analytics.export_events()
    exported = await reads.all(stream)
    assert [e.event.event_id for e in exported] == [e.event_id for e in dataset()]
    assert exported[0].event == dataset()[0]
    assert stream.cursor == exported[-1].cursor
    rest = await reads.all(reads.analytics.export_events(after=exported[3].cursor))
    assert [e.event.event_id for e in rest] == [e.event_id for e in dataset()[4:]]
    views = await reads.all(
        reads.analytics.export_events("view", start=DAY + 1, end=DAY + 4 * 3_600_000)
    )
    assert [e.event.event_id for e in views] == ["ev-03", "ev-04"]
    tail = reads.analytics.export_events(after=exported[-1].cursor, follow=True)
    await reads.call(reads.analytics.track_event, "late", "u9", event_id="ev-late")
    (late,) = await reads.take(tail, 1)
    assert (late.event.event_id, late.event.event_name) == ("ev-late", "late")
    await reads.close_stream(tail)


async def test_bad_requests_are_the_clients_exception_and_not_retried(reads: Readers) -> None:
    with pytest.raises(ec.InvalidArgumentError) as info:
        await reads.call(reads.analytics.query_events, group_by="country")
    assert [f for f, _ in info.value.field_violations] == ["group_by"]
    stream = reads.telemetry.watch_alerts(after="%%%")
    with pytest.raises(ec.InvalidArgumentError) as watch_info:
        await reads.take(stream, 1)
    assert [f for f, _ in watch_info.value.field_violations] == ["after"]
    assert stream.reconnects == 0
    export = reads.analytics.export_events(start=7, end=2)
    with pytest.raises(ec.InvalidArgumentError):
        await reads.all(export)
    assert export.reconnects == 0
    with pytest.raises(ec.InvalidArgumentError) as list_info:
        await reads.all(reads.telemetry.list_alerts(page_size=1001))
    assert [f for f, _ in list_info.value.field_violations] == ["page_size"]
