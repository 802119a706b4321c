"""Tracking plans on the batch path: TrackEvents of 1,000 events with a 50-event plan vs none.

    flock -x /tmp/eventwire-cpu.lock .venv/bin/python bench/plans.py
    flock -x /tmp/eventwire-cpu.lock .venv/bin/python bench/plans.py --rounds 5 --seconds 8

Two servers (``eventwire serve``, SQLite, pinned to core 0; this load
generator on core 1, bench/_harness.py) run in the same run: one with a plan of
50 event schemas applied, one without. Rounds alternate between them, so drift
in the machine hits both alike. The load is four concurrent callers sending
``TrackEvents`` batches of 1,000 events spread over the plan's 50 names, each
event with four properties the plan types (an enum, a pattern with a length
bound, an integer with a range, a boolean); a ``--violating`` share of them
break the enum (quarantined). The goal: with the plan, at least 0.85 times the
events/s without it. Next to each rate: the server's CPU µs per event.

Results: bench/results/plans.md, and one record per variant in
bench/results/history.jsonl.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
from _cpu import cpu_seconds
from _harness import Run, eventwire_server, pinning, publish, record

from eventwire.api import analytics_pb2, analytics_pb2_grpc, plans_pb2, plans_pb2_grpc
from eventwire.testing._process import ServerProcess

RESULTS = Path(__file__).resolve().parent / "results"
PIN = pinning()
NAMES = [f"event_{i:02d}" for i in range(50)]
GOAL = 0.85


def plan_document() -> str:
    """50 event schemas, as JSON (a plan document may be YAML or JSON)."""
    schema = {
        "type": "object",
        "required": ["plan", "screen"],
        "properties": {
            "plan": {"enum": ["free", "pro", "team"]},
            "screen": {"type": "string", "pattern": "^[a-z_]+$", "maxLength": 64},
            "items": {"type": "integer", "minimum": 0, "maximum": 1000},
            "trial": {"type": "boolean"},
        },
    }
    return json.dumps(
        {
            "format": 1,
            "policies": {"unplanned": "accept", "violations": "quarantine"},
            "events": {name: {"properties": schema} for name in NAMES},
        }
    )


def batch(run: str, start: int, violating: float) -> analytics_pb2.EventBatch:
    every = round(1 / violating) if violating else 0
    return analytics_pb2.EventBatch(
        events=[
            analytics_pb2.TrackEventRequest(
                event_name=NAMES[i % 50],
                user_id=f"u{i % 5000}",
                event_id=f"{run}-{start + i:012d}",
                properties={
                    "plan": "gold" if every and i % every == 0 else "pro",
                    "screen": "checkout",
                    "items": str(i % 7),
                    "trial": "false",
                },
            )
            for i in range(1000)
        ]
    )


async def ingest_rate(
    server: ServerProcess, seconds: float, violating: float, concurrency: int = 4
) -> tuple[float, float]:
    """Acknowledged events/s (stored or quarantined), server CPU µs per event."""
    run = secrets.token_hex(4)
    counter = iter(range(0, 10**12, 1000))
    acked = 0
    deadline = time.perf_counter() + seconds
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = analytics_pb2_grpc.AnalyticsServiceStub(channel)

        async def caller() -> None:
            nonlocal acked
            while time.perf_counter() < deadline:
                ack = await stub.TrackEvents(batch(run, next(counter), violating), timeout=60)
                acked += ack.accepted + ack.quarantined

        cpu0, started = cpu_seconds(server.pid), time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        return acked / elapsed, (cpu_seconds(server.pid) - cpu0) / acked * 1e6


async def apply(server: ServerProcess, document: str) -> int:
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = plans_pb2_grpc.PlansServiceStub(channel)
        reply = await stub.ApplyPlan(plans_pb2.ApplyPlanRequest(document=document), timeout=30)
        return reply.version


async def measure(work: Path, rounds: int, seconds: float, violating: float) -> dict[str, Any]:
    servers = {
        variant: eventwire_server(
            "--store",
            f"sqlite:///{work / f'{variant}.db'}",
            "--workers",
            "1",
            pin=PIN,
            http_address="",
        )
        for variant in ("plan", "none")
    }
    for server in servers.values():
        await asyncio.to_thread(server.start)
    try:
        assert await apply(servers["plan"], plan_document()) == 1
        cells: dict[str, list[tuple[float, float]]] = {"plan": [], "none": []}
        for server in servers.values():
            await ingest_rate(server, 1.0, violating)  # warm up
        for _ in range(rounds):
            for variant, server in servers.items():
                cells[variant].append(await ingest_rate(server, seconds, violating))
    finally:
        for server in servers.values():
            server.kill()
    out: dict[str, Any] = {}
    for variant, runs in cells.items():
        out[f"{variant}_events_per_s"] = round(statistics.median(r[0] for r in runs))
        out[f"{variant}_server_cpu_us_per_event"] = round(statistics.median(r[1] for r in runs), 2)
    ratios = [p[0] / n[0] for p, n in zip(cells["plan"], cells["none"], strict=True)]
    out["ratio"] = round(out["plan_events_per_s"] / out["none_events_per_s"], 3)
    out["ratio_min"] = round(min(ratios), 3)
    out["ratio_max"] = round(max(ratios), 3)
    return out


def write_markdown(this: Run, cells: list[dict[str, Any]], args: argparse.Namespace) -> None:
    lines = [
        "# Tracking plans on the batch path",
        "",
        "`bench/plans.py`: TrackEvents of 1,000 events, four concurrent callers, SQLite,",
        "one server with a 50-event-schema plan applied and one without, rounds",
        f"alternated in one run ({args.rounds} rounds of {args.seconds:g} s each).",
        f"Goal: ratio ≥ {GOAL}. {this.pinning}; {this.machine['cpu_model']}.",
        f"Revision {this.revision[:12]}{' (dirty)' if this.dirty else ''}, {this.date}.",
        "",
        "| violating | no plan events/s | CPU µs/event | plan events/s | CPU µs/event "
        "| ratio (min-max) | goal |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        met = "met" if c["ratio"] >= GOAL else "**missed**"
        lines.append(
            f"| {c['violating']:.0%} | {c['none_events_per_s']:,} "
            f"| {c['none_server_cpu_us_per_event']} | {c['plan_events_per_s']:,} "
            f"| {c['plan_server_cpu_us_per_event']} "
            f"| {c['ratio']} ({c['ratio_min']}-{c['ratio_max']}) | {met} |"
        )
    (RESULTS / "plans.md").write_text("\n".join(lines) + "\n")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="per measured run")
    parser.add_argument(
        "--violating",
        default="0,0.01",
        help="shares of events that break the plan, comma-separated",
    )
    args = parser.parse_args()
    PIN.pin_self_to_load()
    this = Run.now(PIN)
    cells = []
    with tempfile.TemporaryDirectory(prefix="eventwire-bench-") as tmp:
        for n, share in enumerate(float(v) for v in args.violating.split(",")):
            work = Path(tmp) / str(n)
            work.mkdir()
            cell = await measure(work, args.rounds, args.seconds, share) | {"violating": share}
            print("plans", cell, flush=True)
            cells.append(cell)
    write_markdown(this, cells, args)
    publish(
        record(
            this,
            "plans",
            f"batch-1000-violating-{c['violating']:g}",
            {k: v for k, v in c.items() if k != "violating"},
            store="sqlite",
            violating=c["violating"],
            plan_events=len(NAMES),
        )
        for c in cells
    )


if __name__ == "__main__":
    asyncio.run(main())
