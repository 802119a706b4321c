"""Commit throughput of the stores, side by side, at several batch sizes.

Drives ``Store.commit`` directly (no gRPC), the way the ingest pipeline does:
each commit carries ``batch`` rows, either as ``batch`` one-event groups (many
TrackEvent RPCs group-committed together, the per-group counting path) or as one
group (a StreamEvents call). Every row is new, so each is a real insert.

    .venv/bin/python bench/store_throughput.py                  # all stores
    .venv/bin/python bench/store_throughput.py --batches 1,100,10000 --seconds 3
    .venv/bin/python bench/store_throughput.py --e2e            # + one whole replica

``--e2e`` then measures one replica end to end: ``eventwire serve`` in a child
process on each store, fed over gRPC by this process with concurrent unary
TrackEvent calls and with TrackEvents batches; events/s are acknowledged ones.
The server runs on CPU 0 and this process on CPU 1 (bench/_harness.py);
PostgreSQL is not pinned. Every cell is also a record in
bench/results/history.jsonl.

PostgreSQL runs in a throwaway database created on ``--pg-url``'s server and
dropped at the end; unreachable PostgreSQL is reported and skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import grpc
import psycopg
from _cpu import TICK, stat_ticks
from _harness import CpuMeter, Run, eventwire_server, pinning, publish, record

from eventwire.api import analytics_pb2, analytics_pb2_grpc
from eventwire.store.base import EventRow, Store
from eventwire.store.postgres import PostgresStore
from eventwire.store.sqlite import SQLiteStore
from eventwire.testing._process import ServerProcess

PROPS = '{"plan": "pro", "screen": "checkout", "ab": "b"}'
_ids = itertools.count()
PIN = pinning()


def rows(n: int) -> list[EventRow]:
    now = time.time_ns() // 1_000_000
    return [
        EventRow("bench", f"e{next(_ids):012d}", "page_view", f"user{i % 1000}", now, now, PROPS)
        for i in range(n)
    ]


def postgres_cpu_seconds() -> float:
    """CPU time used so far by this machine's PostgreSQL processes (Linux /proc)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended meanwhile
            continue
        if text.rsplit(")", 1)[0].endswith("(postgres"):
            total += stat_ticks(text)
    return total * TICK


class Cell(NamedTuple):
    rows_per_s: float
    ms_per_commit: float
    client_us_per_row: float
    """CPU of this process (the store adapter) per row."""
    pg_us_per_row: float
    """CPU of every PostgreSQL process per row; noisy if others use it too."""


async def measure(store: Store, batch: int, shape: str, seconds: float) -> Cell:
    await store.commit([rows(min(batch, 100))], [])  # warm up connections, prepared plans
    commits = total = 0
    busy = client_cpu = 0.0
    pg_before = postgres_cpu_seconds()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline or commits < 3:
        data = rows(batch)
        groups = [[r] for r in data] if shape == "groups" else [data]
        cpu = time.process_time()
        started = time.perf_counter()
        result = await store.commit(groups, [])
        busy += time.perf_counter() - started
        client_cpu += time.process_time() - cpu
        assert sum(result.inserted) == batch
        commits += 1
        total += batch
    pg_cpu = postgres_cpu_seconds() - pg_before
    return Cell(total / busy, busy / commits * 1000, client_cpu / total * 1e6, pg_cpu / total * 1e6)


async def drive(
    server: ServerProcess, mode: str, seconds: float, concurrency: int, batch: int
) -> tuple[float, float, float]:
    """Acknowledged events/s, and server and PostgreSQL CPU microseconds per event."""
    acked = 0
    deadline = time.monotonic() + seconds
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = analytics_pb2_grpc.AnalyticsServiceStub(channel)

        def request(n: int) -> analytics_pb2.TrackEventRequest:
            return analytics_pb2.TrackEventRequest(
                event_name="page_view",
                user_id=f"user{n % 1000}",
                event_id=f"x{next(_ids):012d}",
                properties={"plan": "pro", "screen": "checkout"},
            )

        async def caller() -> None:
            nonlocal acked
            while time.monotonic() < deadline:
                if mode == "unary":
                    await stub.TrackEvent(request(0), timeout=30)
                    acked += 1
                else:
                    events = [request(i) for i in range(batch)]
                    ack = await stub.TrackEvents(
                        analytics_pb2.EventBatch(sequence=1, events=events), timeout=30
                    )
                    acked += ack.accepted

        meter, pg_cpu = CpuMeter(server.pid).start(), postgres_cpu_seconds()
        started = time.monotonic()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        elapsed = time.monotonic() - started
        server_cpu = meter.stop()
        pg_cpu = postgres_cpu_seconds() - pg_cpu
        return acked / elapsed, server_cpu / acked * 1e6, pg_cpu / acked * 1e6


async def end_to_end(stores: dict[str, str], seconds: float, this: Run) -> list[dict[str, Any]]:
    """One replica, pinned as every benchmark's server, fed from this process."""
    shapes = [("unary", 64, 1), ("batch", 4, 1000)]
    out = []
    print(f"\none replica end to end ({seconds:g} s per cell): acknowledged events/s,")
    print("CPU microseconds per event in the server process and in PostgreSQL")
    print(f"{'store':<12} | " + " | ".join(f"{f'{m} x{c}, {b}/call':>32}" for m, c, b in shapes))
    for name, url in stores.items():
        with eventwire_server("--store", url, http_address="", pin=PIN) as server:
            await drive(server, "unary", 0.5, 8, 1)  # warm up
            cells = [await drive(server, m, seconds, c, b) for m, c, b in shapes]
        for (mode, concurrency, batch), (rate, cpu, pg) in zip(shapes, cells, strict=True):
            metrics = {"events_per_s": rate, "server_cpu_us_per_event": cpu}
            if name == "postgresql":
                metrics["pg_cpu_us_per_event"] = pg
            scenario = f"e2e {name} {mode} x{concurrency} {batch}/call"
            out.append(record(this, "store_throughput", scenario, metrics))
        print(
            f"{name:<12} | "
            + " | ".join(
                f"{rate:>9,.0f} ev/s {cpu:6.1f} us "
                + (f"{pg:6.1f} us" if name == "postgresql" else f"{'-':>6}   ")
                for rate, cpu, pg in cells
            ),
            flush=True,
        )
    return out


async def store_table(
    factories: dict[str, Callable[[], Store]],
    batches: list[int],
    shapes: list[str],
    seconds: float,
    this: Run,
) -> list[dict[str, Any]]:
    out = []
    names = list(factories)
    stores = {name: factory() for name, factory in factories.items()}
    try:
        for store in stores.values():
            await store.open()
        header = f"{'shape':<7} {'batch':>6} | " + " | ".join(f"{n:>32}" for n in names)
        print(header)
        units = "rows/s ms/commit  us/row(py,pg)"
        print(f"{'':<7} {'':>6} | " + " | ".join(f"{units:>32}" for _ in names))
        print("-" * len(header))
        for shape in shapes:
            for batch in batches:
                cells = []
                for name in names:
                    c = await measure(stores[name], batch, shape, seconds)
                    metrics = c._asdict()
                    if not name.startswith("pg"):
                        del metrics["pg_us_per_row"]
                    scenario = f"{shape} {batch} {name}"
                    out.append(record(this, "store_throughput", scenario, metrics))
                    pg = f"{c.pg_us_per_row:5.1f}" if name.startswith("pg") else "    -"
                    cells.append(
                        f"{c.rows_per_s:>9,.0f} {c.ms_per_commit:>8.2f}"
                        f" {c.client_us_per_row:6.1f} {pg}"
                    )
                print(f"{shape:<7} {batch:>6} | " + " | ".join(cells), flush=True)
    finally:
        for store in stores.values():
            await store.close()
    return out


def create_database(admin_url: str) -> tuple[str, str]:
    """(URL of a new throwaway database, its name), or ("", "") if unreachable."""
    db = f"eventwire_bench_{secrets.token_hex(4)}"
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f"CREATE DATABASE {db}")
            version = admin.execute("SHOW server_version").fetchone()
    except psycopg.Error as exc:
        print(f"!!! PostgreSQL unreachable at {admin_url}: {exc}; skipping it")
        return "", ""
    print(f"PostgreSQL {version[0] if version else '?'}: throwaway database {db}")
    return admin_url.rsplit("/", 1)[0] + "/" + db, db


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", default="1,10,100,1000,10000")
    parser.add_argument("--shapes", default="groups,stream")
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--stores", default="sqlite-full,sqlite-normal,pg-auto,pg-copy,pg-insert")
    parser.add_argument("--e2e", action="store_true", help="also measure one whole replica")
    parser.add_argument("--e2e-seconds", type=float, default=5.0)
    args = parser.parse_args()

    pg_url, db = create_database(args.pg_url)
    this = Run.now(
        "store table: in this process, not pinned; --e2e: " + PIN.describe()
        if args.e2e
        else "in this process, not pinned"
    )
    m = this.machine
    print(f"{m['cpu_model']}, {m['nproc']} CPUs, Python {m['python']}; ", end="")
    print(f"{args.seconds:g} s per cell\n")
    records: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="eventwire-bench-") as tmp:
            factories: dict[str, Callable[[], Store]] = {
                "sqlite-full": lambda: SQLiteStore(Path(tmp) / "full.db", synchronous="full"),
                "sqlite-normal": lambda: SQLiteStore(Path(tmp) / "norm.db", synchronous="normal"),
            }
            if pg_url:
                factories["pg-auto"] = lambda: PostgresStore(pg_url)
                factories["pg-copy"] = lambda: PostgresStore(pg_url, write_method="copy")
                factories["pg-insert"] = lambda: PostgresStore(pg_url, write_method="insert")
            chosen = {n: factories[n] for n in args.stores.split(",") if n in factories}
            batches = [int(b) for b in args.batches.split(",")]
            records += await store_table(
                chosen, batches, args.shapes.split(","), args.seconds, this
            )
            if args.e2e:
                urls = {"sqlite-full": f"sqlite:///{Path(tmp) / 'e2e.db'}"}
                if pg_url:
                    urls["postgresql"] = pg_url
                PIN.pin_self_to_load()
                records += await end_to_end(urls, args.e2e_seconds, this)
        publish(records)
    finally:
        if db:
            with psycopg.connect(args.pg_url, autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


if __name__ == "__main__":
    asyncio.run(main())
