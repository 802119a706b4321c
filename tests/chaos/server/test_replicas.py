"""Three replicas on one PostgreSQL; the tracker keeps delivering while they die and drain."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

import eventwire.client as ec
from eventwire.testing._process import ServerProcess
from tests.conftest import pg_rows

EVENTS = 6_000


async def streams_open(replica: ServerProcess) -> float:
    """IngestEvents streams the replica is serving now, from its /metrics."""
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://{replica.metrics_address}/metrics")).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "eventwire_rpcs_in_flight"
        and sample.labels.get("grpc_method") == "IngestEvents"
    )


async def carrier(replicas: list[ServerProcess], among: list[int]) -> int:
    """The index of the replica carrying the tracker's stream."""
    for _ in range(200):
        for i in among:
            if await streams_open(replicas[i]) > 0:
                return i
        await asyncio.sleep(0.02)
    raise AssertionError("no replica is carrying the tracker's stream")


async def test_every_event_is_stored_exactly_once_through_a_kill_and_a_drain(
    pg_url: str, tmp_path: Path
) -> None:
    replicas = [ServerProcess("--store", pg_url, "--grace", "5", http_address="") for _ in range(3)]
    # Started one after another: concurrent migrators are tested in tests/store.
    for replica in replicas:
        await asyncio.to_thread(replica.start)
    errors: list[BaseException] = []
    drops: list[ec.DroppedEvent] = []
    try:
        config = ec.TrackerConfig(
            spool_dir=tmp_path / "spool", flush_interval=0.05, max_batch_events=100
        )
        async with ec.Tracker(
            ec.targets(*(r.address for r in replicas)),
            config,
            on_error=errors.append,
            on_drop=drops.append,
        ) as tracker:
            ids: list[str] = []
            for i in range(EVENTS):
                ids.append(
                    tracker.track("failover", user_id=f"u{i % 50}", properties={"i": str(i)})
                )
                if i % 200 == 199:
                    await asyncio.sleep(0.01)  # a steady producer, not one burst
                if i == EVENTS // 3:
                    await asyncio.to_thread(replicas[0].kill)  # a crash: SIGKILL
                if i == 2 * EVENTS // 3:
                    replicas[1].terminate()  # a rolling update: SIGTERM, drain
            assert await tracker.flush(60), "the tracker did not settle every event"
            stats = tracker.stats
        assert await asyncio.to_thread(replicas[1].wait) == 0
    finally:
        for replica in replicas:
            replica.kill()

    assert errors == []
    assert drops == []
    assert (stats.tracked, stats.acked, stats.rejected, stats.dropped) == (EVENTS, EVENTS, 0, 0)
    stored = pg_rows(pg_url, "SELECT event_id, count(*) FROM events GROUP BY event_id")
    assert len(stored) == EVENTS  # every event...
    assert {event_id for event_id, _ in stored} == set(ids)
    assert all(n == 1 for _, n in stored)  # ...exactly once
