"""Relay throughput to a local JetStream, beside ingest throughput, in one run.

    .venv/bin/python bench/relay.py                    # 100,000 events, SQLite
    .venv/bin/python bench/relay.py --events 20000 --store postgresql://postgres@127.0.0.1/test

Ingest: ``eventwire serve`` (CPU 0) takes ``--events`` events in TrackEvents
batches of 500 from this process (CPU 1), 4 calls in flight; events/s are
acknowledged ones, server CPU µs per event from /proc. Relay: the same server
restarted on the same database with ``--destination`` pointing at a
``nats-server -js`` (CPU 1, its own store directory) drains the whole backlog
into a fresh stream; events/s from the server being ready until the stream
holds every event, with the server's CPU µs per event over that window (and
nats-server's, which runs on the other core and bounds the rate). The
relay must not be slower than ingest: the ratio relay/ingest is the figure.
Each phase is run ``--rounds`` times, alternating; records go to
bench/results/history.jsonl.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import nats
import psycopg
from _harness import CpuMeter, Run, eventwire_server, free_port, pinning, publish, record

from eventwire.api import analytics_pb2, analytics_pb2_grpc

PIN = pinning()
BATCH = 500
PROPS = {"plan": "pro", "screen": "checkout", "ab": "b"}


async def ingest(address: str, events: int, tag: str) -> None:
    batches = [
        [
            analytics_pb2.TrackEventRequest(
                event_name="page_view", user_id=f"u{i % 1000}", event_id=f"{tag}-{i}",
                properties=PROPS,
            )
            for i in range(start, min(start + BATCH, events))
        ]
        for start in range(0, events, BATCH)
    ]  # fmt: skip
    queue = iter(batches)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = analytics_pb2_grpc.AnalyticsServiceStub(channel)

        async def worker() -> None:
            for batch in queue:
                await stub.TrackEvents(analytics_pb2.EventBatch(sequence=1, events=batch))

        await asyncio.gather(*(worker() for _ in range(4)))


async def stream_count(url: str, stream: str) -> int:
    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().stream_info(stream)
        return int(info.state.messages or 0)
    except Exception:  # noqa: BLE001 - not created yet
        return 0
    finally:
        await nc.close()


def nats_server(port: int, store: Path) -> subprocess.Popen[bytes]:
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    argv = [binary, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(store)]
    return subprocess.Popen(PIN.load(argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def fresh_store(args: argparse.Namespace, round_no: int, work: Path) -> str:
    """An empty database per round: a SQLite file, or a new schema of ``--store``'s."""
    if not args.store:
        return f"sqlite:///{work / f'r{round_no}.db'}"
    schema = f"relay_bench_{secrets.token_hex(4)}"
    with psycopg.connect(args.store, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    args.schemas.append(schema)
    separator = "&" if "?" in args.store else "?"
    return f"{args.store}{separator}options=-csearch_path%3D{schema}"


async def one_round(args: argparse.Namespace, round_no: int, work: Path) -> dict[str, float]:
    store = fresh_store(args, round_no, work)
    common = ("--store", store, "--sqlite-synchronous", "normal", "--workers", "1")
    server = eventwire_server(*common, http_address="", pin=PIN)
    await asyncio.to_thread(server.start)
    try:
        meter = CpuMeter(server.pid).start()
        started = time.perf_counter()
        await ingest(server.address, args.events, f"r{round_no}")
        ingest_s = time.perf_counter() - started
        ingest_cpu = meter.stop()
    finally:
        server.kill()
    port = free_port()
    broker = nats_server(port, work / f"nats{round_no}")
    url = f"nats://127.0.0.1:{port}"
    try:
        await asyncio.sleep(0.5)
        stream = f"R{round_no}"
        destination = f"js={url}/{stream}?batch={args.batch}"
        relay = eventwire_server(*common, "--destination", destination, http_address="", pin=PIN)
        await asyncio.to_thread(relay.start)
        try:
            meter = CpuMeter(relay.pid).start()
            broker_meter = CpuMeter(broker.pid).start()
            started = time.perf_counter()
            while await stream_count(url, stream) < args.events:  # noqa: ASYNC110 - polls another process
                await asyncio.sleep(0.05)
            relay_s = time.perf_counter() - started
            relay_cpu = meter.stop()
            broker_cpu = broker_meter.stop()
        finally:
            relay.kill()
    finally:
        broker.terminate()
        broker.wait()
    return {
        "ingest_events_per_s": args.events / ingest_s,
        "ingest_cpu_us_per_event": ingest_cpu / args.events * 1e6,
        "relay_events_per_s": args.events / relay_s,
        "relay_cpu_us_per_event": relay_cpu / args.events * 1e6,
        "nats_cpu_us_per_event": broker_cpu / args.events * 1e6,
        "nats_cpu_share": broker_cpu / relay_s,
        "relay_cpu_share": relay_cpu / relay_s,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500, help="the destination's batch option")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--store", default="", help="a postgresql:// URL: each round in a new schema, dropped after"
    )
    args = parser.parse_args()
    args.schemas = []
    PIN.pin_self_to_load()
    run = Run.now(PIN)
    with tempfile.TemporaryDirectory(prefix="relay-bench-") as tmp:
        try:
            results = [await one_round(args, n, Path(tmp)) for n in range(args.rounds)]
        finally:
            for schema in args.schemas:
                with psycopg.connect(args.store, autocommit=True) as conn:
                    conn.execute(f"DROP SCHEMA {schema} CASCADE")
        for round_no, result in enumerate(results):
            print(
                f"round {round_no}: ingest {result['ingest_events_per_s']:,.0f}/s "
                f"({result['ingest_cpu_us_per_event']:.1f} us/event), relay "
                f"{result['relay_events_per_s']:,.0f}/s "
                f"({result['relay_cpu_us_per_event']:.1f} us/event, "
                f"{result['relay_cpu_share']:.0%} of a core; nats-server "
                f"{result['nats_cpu_us_per_event']:.1f} us/event, "
                f"{result['nats_cpu_share']:.0%} of a core)",
                flush=True,
            )
    median: dict[str, Any] = {k: statistics.median(r[k] for r in results) for k in results[0]}
    ratios = [r["relay_events_per_s"] / r["ingest_events_per_s"] for r in results]
    median["relay_over_ingest"] = statistics.median(ratios)
    median["relay_over_ingest_min"] = min(ratios)
    median["relay_over_ingest_max"] = max(ratios)
    store = "postgresql" if args.store else "sqlite"
    print(
        f"median of {args.rounds}: ingest {median['ingest_events_per_s']:,.0f}/s, relay "
        f"{median['relay_events_per_s']:,.0f}/s, relay/ingest {median['relay_over_ingest']:.2f} "
        f"({min(ratios):.2f}-{max(ratios):.2f}); server CPU per event: ingest "
        f"{median['ingest_cpu_us_per_event']:.1f} us, "
        f"relay {median['relay_cpu_us_per_event']:.1f} us"
    )
    publish(
        [record(run, "relay", f"jetstream {store}", median, events=args.events, batch=args.batch)]
    )


if __name__ == "__main__":
    asyncio.run(main())
