"""Commit throughput of the stores, side by side, at several batch sizes.

Drives ``Store.commit`` directly (no gRPC), the way the ingest pipeline does:
each commit carries ``batch`` rows, either as ``batch`` one-event groups (many
TrackEvent RPCs group-committed together, the per-group counting path) or as one
group (a StreamEvents call). Every row is new, so each is a real insert.

    .venv/bin/python bench/store_throughput.py                  # all stores
    .venv/bin/python bench/store_throughput.py --batches 1,100,10000 --seconds 3

PostgreSQL runs in a throwaway database created on ``--pg-url``'s server and
dropped at the end; unreachable PostgreSQL is reported and skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import platform
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from eventwire.store.base import EventRow, Store
from eventwire.store.postgres import PostgresStore
from eventwire.store.sqlite import SQLiteStore

PROPS = '{"plan": "pro", "screen": "checkout", "ab": "b"}'
_ids = itertools.count()


def rows(n: int) -> list[EventRow]:
    now = time.time_ns() // 1_000_000
    return [
        EventRow("bench", f"e{next(_ids):012d}", "page_view", f"user{i % 1000}", now, now, PROPS)
        for i in range(n)
    ]


async def measure(store: Store, batch: int, shape: str, seconds: float) -> tuple[float, float]:
    """Rows per second and mean milliseconds per commit."""
    await store.commit([rows(min(batch, 100))], [])  # warm up connections, prepared plans
    commits = total = 0
    busy = 0.0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline or commits < 3:
        data = rows(batch)
        groups = [[r] for r in data] if shape == "groups" else [data]
        started = time.perf_counter()
        result = await store.commit(groups, [])
        busy += time.perf_counter() - started
        assert sum(result.inserted) == batch
        commits += 1
        total += batch
    return total / busy, busy / commits * 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", default="1,10,100,1000,10000")
    parser.add_argument("--shapes", default="groups,stream")
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--stores", default="sqlite-full,sqlite-normal,pg-auto,pg-copy,pg-insert")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    shapes = args.shapes.split(",")
    wanted = args.stores.split(",")

    db = f"eventwire_bench_{secrets.token_hex(4)}"
    pg_url = ""
    try:
        with psycopg.connect(args.pg_url, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f"CREATE DATABASE {db}")
            version = admin.execute("SHOW server_version").fetchone()
        pg_url = args.pg_url.rsplit("/", 1)[0] + "/" + db
        print(f"PostgreSQL {version[0] if version else '?'}: throwaway database {db}")
    except psycopg.Error as exc:
        print(f"!!! PostgreSQL unreachable at {args.pg_url}: {exc}; skipping it")

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, ", end="")
    print(f"Python {platform.python_version()}; {args.seconds:g} s per cell\n")

    with tempfile.TemporaryDirectory(prefix="eventwire-bench-") as tmp:
        factories: dict[str, Callable[[], Store]] = {
            "sqlite-full": lambda: SQLiteStore(Path(tmp) / "full.db", synchronous="full"),
            "sqlite-normal": lambda: SQLiteStore(Path(tmp) / "normal.db", synchronous="normal"),
        }
        if pg_url:
            factories["pg-auto"] = lambda: PostgresStore(pg_url)
            factories["pg-copy"] = lambda: PostgresStore(pg_url, write_method="copy")
            factories["pg-insert"] = lambda: PostgresStore(pg_url, write_method="insert")
        names = [n for n in wanted if n in factories]
        stores = {name: factories[name]() for name in names}
        for store in stores.values():
            await store.open()
        try:
            header = f"{'shape':<7} {'batch':>6} | " + " | ".join(f"{n:>22}" for n in names)
            print(header)
            print(f"{'':<7} {'':>6} | " + " | ".join(f"{'rows/s   ms/commit':>22}" for _ in names))
            print("-" * len(header))
            for shape in shapes:
                for batch in batches:
                    cells = []
                    for name in names:
                        rate, ms = await measure(stores[name], batch, shape, args.seconds)
                        cells.append(f"{rate:>12,.0f} {ms:>9.2f}")
                    print(f"{shape:<7} {batch:>6} | " + " | ".join(cells), flush=True)
        finally:
            for store in stores.values():
                await store.close()
            if pg_url:
                with psycopg.connect(args.pg_url, autocommit=True) as admin:
                    admin.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


if __name__ == "__main__":
    asyncio.run(main())
