"""What SQLite's memory-mapped I/O would buy, and what the per-commit fault checks cost.

Side by side in one run, on one machine: the SQLite store as shipped
(``mmap_size = 0``) and the same store with ``mmap_size = 256 MiB`` on both of
its connections, for group commits (100 one-event groups per commit) and for
``count_events`` queries over a table of ``--rows`` rows (warm cache). Then the
cost of the checks run before every group commit is acknowledged (file
identity and the WAL index's attributes: stat, fstat, ioctl).

    flock -x /tmp/eventwire-cpu.lock .venv/bin/python bench/sqlite_mmap.py

Printed; every figure is also a record in bench/results/history.jsonl.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import tempfile
import time
from pathlib import Path

from _harness import Run, publish, record

from eventwire.store.base import EventQuery, EventRow
from eventwire.store.sqlite import SQLiteStore

_ids = itertools.count()
MMAP = 256 << 20


def rows(n: int) -> list[EventRow]:
    now = 1_750_000_000_000
    return [
        EventRow(
            "bench", f"e{next(_ids):012d}", f"ev{i % 20}", f"user{i % 1000}", now + i, now, "{}"
        )
        for i in range(n)
    ]


async def open_store(path: Path, mmap_size: int) -> SQLiteStore:
    store = SQLiteStore(path, synchronous="normal")
    await store.open()
    for thread, conn in ((store._write_thread, store._writer), (store._read_thread, store._reader)):
        assert conn is not None
        await store._on(thread, conn.execute, f"PRAGMA mmap_size = {mmap_size}")
    return store


async def commits_per_s(store: SQLiteStore, seconds: float) -> float:
    done = 0
    deadline = time.monotonic() + seconds
    started = time.perf_counter()
    while time.monotonic() < deadline:
        await store.commit([[r] for r in rows(100)], [])
        done += 100
    return done / (time.perf_counter() - started)


async def query_ms(store: SQLiteStore, queries: int) -> float:
    started = time.perf_counter()
    for i in range(queries):
        await store.count_events(
            "bench", EventQuery(event_name=f"ev{i % 20}", start=1_750_000_000_000 + i)
        )
    return (time.perf_counter() - started) / queries * 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        stores = {
            "mmap_size=0 (shipped)": await open_store(Path(tmp) / "a.db", 0),
            "mmap_size=256MiB": await open_store(Path(tmp) / "b.db", MMAP),
        }
        try:
            for store in stores.values():
                for _ in range(args.rows // 10_000):
                    await store.commit([rows(10_000)], [])
            this = Run.now("in process, not pinned")
            records = []
            print(f"{'':<24} {'rows/s (commits of 100 groups)':>32} {'ms per count query':>20}")
            for name, store in stores.items():
                rate = await commits_per_s(store, args.seconds)
                ms = await query_ms(store, 200)
                print(f"{name:<24} {rate:>32,.0f} {ms:>20.2f}", flush=True)
                metrics = {"rows_per_s": rate, "ms_per_count_query": ms}
                records.append(record(this, "sqlite_mmap", name, metrics, rows=args.rows))
            store = stores["mmap_size=0 (shipped)"]
            n = 100_000
            started = time.perf_counter()
            for _ in range(n):
                store._check_wal_index()
                store._check_identity()
            cost = (time.perf_counter() - started) / n * 1e6
            print(f"fault checks per group commit (stat + fstat + ioctl): {cost:.2f} us")
            records.append(record(this, "sqlite_mmap", "fault checks", {"us_per_commit": cost}))
            publish(records)
        finally:
            for store in stores.values():
                await store.close()


if __name__ == "__main__":
    asyncio.run(main())
