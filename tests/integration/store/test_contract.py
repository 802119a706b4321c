"""The Store contract, the same tests for every adapter (SQLite, PostgreSQL COPY and INSERT)."""

from __future__ import annotations

import asyncio
import random

import pytest

from eventwire.store import AlertRow, EventQuery, EventRow, EventValues, Store, StoreUnavailable
from eventwire.store.migrations import MIGRATIONS
from tests.conftest import pg_rows
from tests.support.store import StoreFactory

NOW = 1_750_000_000_000


def ev(
    event_id: str,
    name: str = "signup",
    *,
    tenant: str = "acme",
    user: str = "u1",
    ts: int = NOW,
    props: str = "{}",
) -> EventRow:
    return EventRow(tenant, event_id, name, user, ts, NOW + 1, props)


def alert(
    tracking_id: str, key: str | None = None, *, tenant: str = "acme", device: str = "dev-1"
) -> AlertRow:
    return AlertRow(tracking_id, tenant, device, "overheat", NOW, NOW + 1, key)


async def count(store: Store, tenant: str = "acme", **filters: str | int) -> int:
    return await store.count_events(tenant, EventQuery(**filters))  # type: ignore[arg-type]


# -- events ---------------------------------------------------------------------------


async def test_empty_commits(store: Store) -> None:
    assert await store.commit([], []) == ([], [])
    assert await store.commit([[], []], []) == ([0, 0], [])
    assert await count(store) == 0


async def test_duplicates_within_one_group_are_stored_once(store: Store) -> None:
    result = await store.commit([[ev("a"), ev("a"), ev("b")]], [])
    assert result.inserted == [2]
    assert await count(store) == 2


async def test_per_group_counts_in_one_batch(store: Store) -> None:
    await store.commit([[ev("old")]], [])
    groups = [[ev("a")], [ev("a"), ev("b")], [ev("b")], [ev("old"), ev("c")], [], [ev("old")]]
    result = await store.commit(groups, [])
    assert result.inserted == [1, 1, 0, 1, 0, 0]
    assert await count(store) == 4


async def test_first_occurrence_in_a_batch_is_the_one_stored(store: Store) -> None:
    result = await store.commit([[ev("a", "first")], [ev("a", "second")]], [])
    assert result.inserted == [1, 0]
    assert await count(store, event_name="first") == 1
    assert await count(store, event_name="second") == 0


async def test_duplicates_across_batches(store: Store) -> None:
    assert (await store.commit([[ev("a"), ev("b")]], [])).inserted == [2]
    assert (await store.commit([[ev("b"), ev("c")]], [])).inserted == [1]
    assert (await store.commit([[ev("a")], [ev("c")]], [])).inserted == [0, 0]
    assert await count(store) == 3


async def test_event_ids_are_per_tenant(store: Store) -> None:
    result = await store.commit([[ev("a", tenant="t1")], [ev("a", tenant="t2")]], [])
    assert result.inserted == [1, 1]
    assert await count(store, "t1") == 1
    assert await count(store, "t2") == 1
    assert await count(store, "t3") == 0


async def test_large_batches_of_many_groups_and_one_stream(store: Store) -> None:
    singles = [[ev(f"s{i}")] for i in range(3000)]
    stream = [ev(f"m{i}") for i in range(3000)] + [ev("s1"), ev("s2")]
    result = await store.commit([*singles, stream], [])
    assert result.inserted == [1] * 3000 + [3000]
    again = await store.commit([[ev(f"m{i}") for i in range(2990, 3010)]], [])
    assert again.inserted == [10]
    assert await count(store) == 6010


async def test_a_group_spanning_chunks_counts_each_duplicate_once(store: Store) -> None:
    # SQLite inserts 100 rows a statement, then the rest row by row: repeats
    # inside a chunk, across chunks, into the rest, and of stored rows, as plain
    # tuples (what the batch paths build) and EventRows mixed.
    await store.commit([[ev("stored")]], [])
    group: list[EventValues] = [tuple(ev(f"e{i}", f"first{i}")) for i in range(230)]  # type: ignore[misc]
    group[50] = ev("e5", "again")  # the same chunk
    group[150] = ev("e10", "again")  # a later chunk
    group[220] = ev("e20", "again")  # the rest
    group[225] = ev("e210", "again")  # within the rest
    group[120] = ev("stored", "again")
    result = await store.commit([group], [])
    assert result.inserted == [225]
    assert await count(store) == 226
    assert await count(store, event_name="again") == 0
    assert await count(store, event_name="first5") == 1


async def test_properties_with_json_escapes_and_unicode(store: Store) -> None:
    props = '{"quote": "a\\"b", "path": "C:\\\\x", "tab": "\\t", "emoji": "\u00e9\U0001f600"}'
    result = await store.commit([[ev("a", props=props, user="Zoë \\ tab")]], [])
    assert result.inserted == [1]
    assert await count(store, user_id="Zoë \\ tab") == 1


async def test_count_events_filters(store: Store) -> None:
    await store.commit(
        [
            [
                ev("1", "view", user="u1", ts=NOW),
                ev("2", "view", user="u2", ts=NOW + 10),
                ev("3", "buy", user="u1", ts=NOW + 20),
                ev("4", "view", user="u1", ts=NOW + 30),
                ev("5", "view", user="u1", ts=NOW, tenant="other"),
            ]
        ],
        [],
    )
    assert await count(store) == 4
    assert await count(store, event_name="view") == 3
    assert await count(store, user_id="u1") == 3
    assert await count(store, event_name="view", user_id="u1") == 2
    assert await count(store, start=NOW + 10) == 3  # inclusive
    assert await count(store, end=NOW + 20) == 2  # exclusive
    assert await count(store, start=NOW + 10, end=NOW + 30, event_name="view") == 1
    assert await count(store, event_name="nope") == 0


# -- alerts ---------------------------------------------------------------------------


async def test_alert_idempotency_within_and_across_batches(store: Store) -> None:
    first = await store.commit(
        [], [alert("t1", "k1"), alert("t2", "k1"), alert("t3"), alert("t4"), alert("t5", "k2")]
    )
    assert first.tracking_ids == ["t1", "t1", "t3", "t4", "t5"]
    again = await store.commit([], [alert("t6", "k2"), alert("t7", "k1"), alert("t8", "k3")])
    assert again.tracking_ids == ["t5", "t1", "t8"]
    assert await store.get_alert("acme", "t2") is None
    assert await store.get_alert("acme", "t7") is None


async def test_idempotency_keys_are_per_tenant(store: Store) -> None:
    result = await store.commit([], [alert("a1", "k", tenant="t1"), alert("a2", "k", tenant="t2")])
    assert result.tracking_ids == ["a1", "a2"]


async def test_events_and_alerts_in_one_commit(store: Store) -> None:
    result = await store.commit([[ev("a")], [ev("a")]], [alert("t1", "k"), alert("t2", "k")])
    assert result == ([1, 0], ["t1", "t1"])


async def test_get_alert(store: Store) -> None:
    stored = AlertRow("trk-1", "acme", "dev-9", "low_battery", NOW - 5, NOW, "key-1")
    await store.commit([], [stored, alert("trk-2")])
    assert await store.get_alert("acme", "trk-1") == stored
    assert await store.get_alert("acme", "trk-2") == alert("trk-2")
    assert await store.get_alert("other-tenant", "trk-1") is None
    assert await store.get_alert("acme", "unknown") is None


# -- lifecycle ------------------------------------------------------------------------


async def test_close_and_reopen_keeps_data(make_store: StoreFactory) -> None:
    store = make_store()
    await store.open()
    await store.commit([[ev("a"), ev("b")]], [alert("t1", "k")])
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.commit([[ev("c")]], [])

    reopened = make_store()
    await reopened.open()
    try:
        assert await count(reopened) == 2
        assert (await reopened.commit([[ev("a"), ev("c")]], [alert("t2", "k")])) == ([1], ["t1"])
        await reopened.check()
    finally:
        await reopened.close()


async def test_migrations_are_idempotent(
    kind: str, store_url: str, make_store: StoreFactory
) -> None:
    for _ in range(3):
        store = make_store()
        await store.open()
        await store.close()
    latest = MIGRATIONS[-1].version
    if kind == "sqlite":
        import sqlite3

        with sqlite3.connect(store_url.removeprefix("sqlite:///")) as conn:
            assert conn.execute("PRAGMA user_version").fetchone() == (latest,)
    else:
        versions = pg_rows(store_url, "SELECT version FROM eventwire_schema ORDER BY version")
        assert versions == [(m.version,) for m in MIGRATIONS]


async def test_replicas_committing_the_same_events_concurrently_store_each_once(
    make_store: StoreFactory,
) -> None:
    """Two stores on one database (two replicas) race on overlapping event ids."""
    replicas = [make_store(), make_store()]
    for replica in replicas:
        await replica.open()
    rng = random.Random(7)  # noqa: S311 - reproducible shuffles, not secrets
    try:
        new = 0
        for round_ in range(15):
            ids = [f"r{round_}-{i}" for i in range(120)]
            keys = [f"k{round_}-{j}" for j in range(5)]

            async def send(
                replica: int, ids: list[str], keys: list[str]
            ) -> tuple[int, dict[str, str]]:
                # Single-event groups plus a stream group, like a real group commit.
                groups = [[ev(i)] for i in ids[:60]] + [[ev(i) for i in ids[60:]]]
                alerts = [alert(f"{k}-from-{replica}", k) for k in keys]
                result = await replicas[replica].commit(groups, alerts)
                return sum(result.inserted), dict(zip(keys, result.tracking_ids, strict=True))

            # Each replica sees the ids in its own order: different lock orders.
            results = await asyncio.gather(
                *(
                    send(n, rng.sample(ids, len(ids)), rng.sample(keys, len(keys)))
                    for n in range(len(replicas))
                )
            )
            inserted = sum(n for n, _ in results)
            assert inserted == len(ids)
            assert results[0][1] == results[1][1]  # both replicas name the same stored alert
            new += inserted
        assert new == 15 * 120
        assert await count(replicas[0]) == 15 * 120
        assert await count(replicas[1]) == 15 * 120
    finally:
        for replica in replicas:
            await replica.close()


async def test_check_passes_on_healthy_storage(store: Store) -> None:
    await store.check()


async def test_timestamps_across_the_whole_int64_range(store: Store) -> None:
    stamps = [1, 2**31 + 1, NOW, 2**62]
    result = await store.commit([[ev(f"t{i}", ts=ts)] for i, ts in enumerate(stamps)], [])
    assert result.inserted == [1, 1, 1, 1]
    assert await count(store, start=2**31, end=2**62) == 2
    assert await count(store, start=2**62) == 1


async def test_concurrent_commits_on_one_store(store: Store) -> None:
    """The Protocol allows concurrent calls: overlapping commits, reads in between."""
    batches = [[[ev(f"c{(n * 7 + i) % 40}")] for i in range(10)] for n in range(8)]
    commits = [asyncio.create_task(store.commit(b, [])) for b in batches]
    seen = await asyncio.gather(*(count(store) for _ in range(4)))
    results = await asyncio.gather(*commits)
    assert all(0 <= n <= 40 for n in seen)
    assert sum(sum(r.inserted) for r in results) == 40
    assert await count(store) == 40
