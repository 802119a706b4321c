"""The quarantine in each store: committed with events, released once, expired by retention."""

from __future__ import annotations

import asyncio

from eventwire.ingest.enforcement import quarantine_event
from eventwire.reads.retention import Retention
from eventwire.store import open_store
from eventwire.store.base import EventRow
from eventwire.store.quarantine import QuarantineFilter
from tests.support.plans import plan_store

__all__ = ["plan_store"]  # a fixture

NOW = 1_750_000_000_000
VIOLATIONS = '[{"field": "properties.plan", "rule": "enum", "message": "not one of free, pro"}]'


def row(event_id: str) -> EventRow:
    return EventRow("acme", event_id, "signup", "u1", NOW, NOW, '{"plan": "gold"}', 1)


async def test_release_races_move_each_row_once_and_retention_expires_the_rest(
    plan_store: str,
) -> None:
    stores = [open_store(plan_store, exclusive=False) for _ in range(2)]
    for store in stores:
        await store.open()
    try:
        a, b = stores
        held = [quarantine_event(row(f"q{i}"), VIOLATIONS, 1, NOW + i) for i in range(10)]
        # Quarantined rows commit with the events of the same group commit.
        result = await a.commit([[row("e0")]], [], held + held[:1])
        assert result.inserted == [1]
        where = QuarantineFilter("acme")
        groups, total = await a.quarantine_groups(where, 10)
        assert total == 10
        assert [(g.kind, g.name, g.rule, g.rows) for g in groups] == [
            ("event", "signup", "enum", 10)
        ]
        assert await a.quarantine_groups(QuarantineFilter("globex"), 10) == ([], 0)
        page = await a.read_quarantine(where, 0, 100)
        assert [q.row.key for q in page] == [f"q{i}" for i in range(10)]
        moves = [(q.seq, row(q.row.key)) for q in page[:6]]
        # Two replicas release the same rows at once: each moves once in all.
        results = await asyncio.gather(
            a.release_quarantine(moves, []), b.release_quarantine(moves, [])
        )
        assert sum(moved for moved, _ in results) == 6
        assert sum(dup for _, dup in results) == 0
        assert await a.release_quarantine(moves, []) == (0, 0)
        assert (await a.quarantine_groups(where, 10))[1] == 4
        # Retention keeps the quarantine as long as events, from when each was quarantined.
        retention = Retention(a, {"events": 1000}, clock=lambda: NOW + 1000 + 8)
        await retention.purge_once()
        assert retention.quarantine_purged == 2  # q6, q7 (quarantined before NOW + 8)
        assert await a.discard_quarantine(QuarantineFilter("acme", rule="enum")) == 2
        assert (await a.quarantine_groups(where, 10))[1] == 0
    finally:
        for store in stores:
            await store.close()
