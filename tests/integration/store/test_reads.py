"""Store reads in commit order, aggregates and purges: exact on SQLite and PostgreSQL."""

from __future__ import annotations

from eventwire.store import (
    ORIGIN,
    AlertFilter,
    AlertRow,
    EventAggregation,
    EventQuery,
    EventRow,
    Position,
    Store,
)
from tests.support.store import NOW, StoreFactory

HOUR = 3_600_000


def alert(n: int, *, tenant: str = "acme", device: str = "d1", severity: int = 0) -> AlertRow:
    return AlertRow(f"t{n:04d}", tenant, device, "smoke", NOW + n, NOW + n, None, severity)


def event(n: int, name: str = "signup", *, tenant: str = "acme", received: int = NOW) -> EventRow:
    return EventRow(tenant, f"e{n:04d}", name, f"u{n % 3}", NOW + n * HOUR, received, "{}")


async def test_alert_pages_cover_every_row_once_in_commit_order(store: Store) -> None:
    for n in range(7):
        await store.commit([], [alert(n, device=f"d{n % 2}", severity=n % 4)])
    await store.commit([], [alert(99, tenant="globex")])
    seen: list[str] = []
    positions: list[Position] = []
    after = ORIGIN
    for _ in range(10):
        page = await store.read_alerts(after, AlertFilter("acme"), 3)
        seen += [r.row.tracking_id for r in page.rows]
        positions += [r.position for r in page.rows]
        assert page.through >= after
        if not page.rows:
            break
        after = page.through
    assert seen == [f"t{n:04d}" for n in range(7)]
    assert positions == sorted(set(positions))
    only = await store.read_alerts(ORIGIN, AlertFilter("acme", device_id="d1", min_severity=2), 10)
    assert [r.row.tracking_id for r in only.rows] == ["t0003"]
    assert [r.row.severity for r in only.rows] == [3]
    everyone = await store.read_alerts(ORIGIN, AlertFilter(None), 100)
    assert len(everyone.rows) == 8
    # Nothing committed after the head can land at or before it.
    head = await store.head("alerts")
    await store.commit([], [alert(100)])
    later = await store.read_alerts(head, AlertFilter(None), 100)
    assert [r.row.tracking_id for r in later.rows] == ["t0100"]


async def test_event_pages_resume_without_gaps_or_repeats(store: Store) -> None:
    await store.commit([[event(n, "signup" if n % 2 else "view") for n in range(9)]], [])
    query = EventQuery(event_name="signup")
    ids: list[str] = []
    after = ORIGIN
    while True:
        page = await store.read_events(after, "acme", query, 2)
        ids += [r.row.event_id for r in page.rows]
        after = page.through
        if len(page.rows) < 2:
            break
    assert ids == ["e0001", "e0003", "e0005", "e0007"]
    assert await store.tail("events") >= after


async def test_aggregates_are_exact(store: Store) -> None:
    rows = [
        EventRow("acme", "a", "signup", "u1", NOW, NOW, '{"plan":"pro"}'),
        EventRow("acme", "b", "signup", "u1", NOW + 1, NOW, '{"plan":"free"}'),
        EventRow("acme", "c", "signup", "u2", NOW + 2, NOW, '{"plan":"pro"}'),
        EventRow("acme", "d", "view", "", NOW + 3, NOW, "{}"),
        EventRow("acme", "e", "view", "u1", NOW + HOUR, NOW, '{"plan.x":"odd \\"key\\""}'),
        EventRow("globex", "f", "view", "u9", NOW, NOW, "{}"),
    ]
    await store.commit([rows], [])
    bucket = NOW - NOW % HOUR
    hourly = await store.aggregate_events(
        "acme", EventAggregation("", 0, 0, HOUR, "event_name", 100)
    )
    assert [(a.bucket_start, a.group, a.count, a.distinct_users) for a in hourly] == [
        (bucket, "signup", 3, 2),
        (bucket, "view", 1, 0),
        (bucket + HOUR, "view", 1, 1),
    ]
    plans = await store.aggregate_events(
        "acme", EventAggregation("", 0, 0, 0, "properties.plan", 100)
    )
    assert [(a.group, a.count, a.distinct_users) for a in plans] == [
        ("", 2, 1),
        ("pro", 2, 2),
        ("free", 1, 1),
    ]
    odd = await store.aggregate_events(
        "acme", EventAggregation("view", 0, 0, 0, "properties.plan.x", 100)
    )
    assert [(a.group, a.count) for a in odd] == [("", 1), ('odd "key"', 1)]
    ranged = await store.aggregate_events(
        "acme", EventAggregation("", NOW + 1, NOW + 3, 0, "", 100)
    )
    assert [(a.bucket_start, a.group, a.count) for a in ranged] == [(0, "", 2)]


async def test_purge_deletes_a_prefix_in_small_chunks(store: Store) -> None:
    for n in range(5):
        await store.commit([[event(n, received=NOW + n)]], [alert(n)])
    assert await store.retained_after("alerts") == ORIGIN
    assert await store.purge("alerts", NOW + 3, 2) == 2
    assert await store.purge("alerts", NOW + 3, 2) == 1
    assert await store.purge("alerts", NOW + 3, 2) == 0
    left = await store.read_alerts(ORIGIN, AlertFilter("acme"), 10)
    assert [r.row.tracking_id for r in left.rows] == ["t0003", "t0004"]
    mark = await store.retained_after("alerts")
    assert mark < left.rows[0].position
    # Everything expired: alerts go entirely; events keep their newest row.
    assert await store.purge("alerts", NOW + 100, 100) == 2
    purged = await store.purge("events", NOW + 100, 100)
    remaining = await store.read_events(ORIGIN, "acme", EventQuery(), 10)
    assert purged + len(remaining.rows) == 5
    assert len(remaining.rows) <= 1
    # A new row still lands after everything ever handed out.
    await store.commit([[event(50, received=NOW + 200)]], [alert(50)])
    new = await store.read_alerts(await store.retained_after("alerts"), AlertFilter("acme"), 10)
    assert [r.row.tracking_id for r in new.rows] == ["t0050"]
    assert new.rows[0].position > mark


async def test_replicas_share_the_cursor_key(make_store: StoreFactory) -> None:
    first, second = make_store(), make_store()
    await first.open()
    await second.open()
    try:
        assert await first.cursor_key() == await second.cursor_key()
        assert len(await first.cursor_key()) == 32
    finally:
        await first.close()
        await second.close()
