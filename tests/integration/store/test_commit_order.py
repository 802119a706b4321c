"""PostgreSQL reads in commit order: writers with random commit delays, none missed or twice.

A row's sequence number is taken when it is inserted, not when it commits, so
a reader that resumes after the highest ``seq`` it saw misses rows whose
transaction commits late. The first test stages exactly that and shows the
naive reader losing the row while the store's (xid, seq) reads do not; the
second runs many writers on two replicas with random delays inside their
transactions and checks that every committed alert arrives exactly once. The
last checks that those reads walk the (xid, seq) indexes rather than sort.
"""

from __future__ import annotations

import asyncio
import random
import secrets

import psycopg
from psycopg import sql

from eventwire.store import ORIGIN, AlertFilter, AlertRow, EventQuery, Position, Store
from eventwire.store.postgres import PostgresStore, alert_page_query, event_page_query
from tests.support.store import NOW

_INSERT = (
    "INSERT INTO alerts (tracking_id, tenant, device_id, alert_type, ts, received_at)"
    " VALUES (%s, 'acme', 'd', 't', %s, %s)"
)


async def _read_all(store: Store, after: Position, seen: list[str]) -> Position:
    while True:
        page = await store.read_alerts(after, AlertFilter(None), 100)
        seen += [r.row.tracking_id for r in page.rows]
        after = page.through
        if len(page.rows) < 100:
            return after


async def test_a_row_committing_late_is_not_skipped(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    await store.open()
    slow = await psycopg.AsyncConnection.connect(pg_url)
    fast = await psycopg.AsyncConnection.connect(pg_url, autocommit=True)
    try:
        seen: list[str] = []
        after = await _read_all(store, ORIGIN, seen)
        # The slow transaction takes the lower seq, the fast one commits first.
        await slow.execute(_INSERT, ("slow", NOW, NOW))
        await fast.execute(_INSERT, ("fast", NOW, NOW))
        naive = await fast.execute("SELECT seq, tracking_id FROM alerts ORDER BY seq")
        naive_rows = await naive.fetchall()
        assert [t for _, t in naive_rows] == ["fast"]
        naive_after = naive_rows[-1][0]
        after = await _read_all(store, after, seen)
        assert seen == []  # "fast" waits: an older transaction is still open
        await slow.commit()
        naive = await fast.execute(
            "SELECT tracking_id FROM alerts WHERE seq > %s ORDER BY seq", (naive_after,)
        )
        assert await naive.fetchall() == []  # the naive reader lost "slow" for good
        await _read_all(store, after, seen)
        assert seen == ["slow", "fast"]
    finally:
        await slow.close()
        await fast.close()
        await store.close()


async def test_concurrent_writers_with_random_commit_delays(pg_url: str) -> None:
    replicas = [PostgresStore(pg_url), PostgresStore(pg_url)]
    for replica in replicas:
        await replica.open()
    reader = replicas[0]
    rng = random.Random(18)  # noqa: S311 - test timing, not secrets
    committed: list[str] = []
    writers_done = asyncio.Event()

    async def raw_writer(count: int) -> None:
        # A writer of its own transaction: sleeps between insert and commit.
        async with await psycopg.AsyncConnection.connect(pg_url) as conn:
            for _ in range(count):
                tracking_id = secrets.token_hex(8)
                await conn.execute(_INSERT, (tracking_id, NOW, NOW))
                await asyncio.sleep(rng.uniform(0, 0.03))
                await conn.commit()
                committed.append(tracking_id)

    async def store_writer(store: Store, count: int) -> None:
        for _ in range(count):
            rows = [
                AlertRow(secrets.token_hex(8), "acme", "d", "t", NOW, NOW, None)
                for _ in range(rng.randint(1, 4))
            ]
            await store.commit([], rows)
            committed.extend(r.tracking_id for r in rows)
            await asyncio.sleep(rng.uniform(0, 0.005))

    seen: list[str] = []
    positions: list[Position] = []

    async def watch() -> None:
        after = ORIGIN
        while True:
            done = writers_done.is_set()
            page = await reader.read_alerts(after, AlertFilter(None), 50)
            seen.extend(r.row.tracking_id for r in page.rows)
            positions.extend(r.position for r in page.rows)
            after = page.through
            if done and not page.rows and not page.pending:
                return
            await asyncio.sleep(0.001)

    watcher = asyncio.create_task(watch())
    try:
        await asyncio.gather(
            *(raw_writer(15) for _ in range(4)),
            *(store_writer(replica, 20) for replica in replicas),
        )
        writers_done.set()
        await asyncio.wait_for(watcher, 30)
    finally:
        for replica in replicas:
            await replica.close()
    assert len(committed) > 100
    assert len(seen) == len(set(seen)), "an alert was delivered twice"
    assert sorted(seen) == sorted(committed), "an alert was missed"
    assert positions == sorted(positions)
    assert len(set(positions)) == len(positions)


def _plan(url: str, statement: object, params: list[object]) -> str:
    with psycopg.connect(url, autocommit=True) as conn:
        # As on a big table, even on this empty one; a query whose ORDER BY the
        # index cannot give still shows a Sort.
        conn.execute("SET enable_seqscan = off")
        conn.execute("SET enable_bitmapscan = off")
        rows = conn.execute(sql.SQL("EXPLAIN ") + statement, params).fetchall()  # type: ignore[operator]
    return "\n".join(row[0] for row in rows)


async def test_reads_walk_the_position_index_instead_of_sorting(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    await store.open()  # migrations
    await store.close()
    after = Position(5, 7)
    queries = {
        "alerts_by_position": alert_page_query(after, AlertFilter(None), 100),
        "alerts_by_tenant": alert_page_query(after, AlertFilter("acme", device_id="d"), 100),
        "events_by_position": event_page_query(after, "acme", EventQuery("signup"), 100),
    }
    for index, (statement, params) in queries.items():
        plan = _plan(pg_url, statement, params)
        assert f"Index Scan using {index}" in plan, plan
        assert "Sort" not in plan, plan
