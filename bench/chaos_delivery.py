"""Effectively-once delivery under fire: N events through the Tracker while the server is SIGKILLed.

A real ``eventwire serve`` (SQLite, ``--sqlite-synchronous full``, the default)
runs in a child process; this process tracks ``--events`` events as fast as it
can through an async :class:`~eventwire.client.Tracker` with a disk spool. Each
of ``--kills`` SIGKILLs lands at an even share of acknowledged progress (never
at a time, so a slow box gets the same run), and the server is restarted on the
same port at once. When every event is acknowledged, the SQLite file is read
directly: every tracked event_id must be there, once.

    .venv/bin/python bench/chaos_delivery.py                       # 1,000,000 events, 20 kills
    .venv/bin/python bench/chaos_delivery.py --events 50000 --kills 3 --no-write

Results go to bench/results/chaos_delivery.md and, as one record, to
bench/results/history.jsonl (unless --no-write).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _harness import Run, numbers, publish, record

from eventwire.client import Tracker, TrackerConfig
from eventwire.testing._process import ServerProcess

RESULTS = Path(__file__).parent / "results"
# The tracker in this process and the server it kills share the cores on purpose:
# this measures delivery under faults, not speed.
UNPINNED = "not pinned: tracker and server share the machine's cores"


def stored(db: Path) -> tuple[int, set[str]]:
    with sqlite3.connect(db) as conn:
        rows = [r[0] for r in conn.execute("SELECT event_id FROM events")]
    return len(rows), set(rows)


async def run(events: int, kills: int, tmp: Path) -> dict[str, Any]:
    db = tmp / "events.db"
    server = ServerProcess("--store", f"sqlite:///{db}", http_address="")
    await asyncio.to_thread(server.start)
    config = TrackerConfig(spool_dir=tmp / "spool", flush_interval=0.05, max_retry_delay=0.5)
    ids: list[str] = []
    kill_log: list[dict[str, float]] = []
    started = time.monotonic()
    try:
        async with Tracker(server.address, config) as tracker:

            async def produce() -> None:
                for i in range(events):
                    ids.append(
                        tracker.track("bench", user_id=f"u{i % 1000}", properties={"i": str(i)})
                    )
                    if i % 1000 == 999:
                        await asyncio.sleep(0)  # let the sender run: track() itself never waits

            producer = asyncio.create_task(produce())
            for k in range(kills):
                mark = (k + 1) * events // (kills + 1)
                # Polls the counters: no event fires on an ack count.
                while tracker.stats.acked < mark:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
                server.kill()
                down = time.monotonic()
                await asyncio.to_thread(server.restart)
                kill_log.append(
                    {
                        "at_acked": tracker.stats.acked,
                        "at_s": round(down - started, 3),
                        "restart_s": round(time.monotonic() - down, 3),
                    }
                )
                print(f"kill {k + 1}/{kills} at {tracker.stats.acked:,} acked", flush=True)
            await producer
            tracked_s = time.monotonic() - started
            delivered = await tracker.flush(timeout=1800)
            elapsed = time.monotonic() - started
            stats = tracker.stats
    finally:
        server.kill()
    rows, distinct = stored(db)
    wanted = set(ids)
    return {
        "events_sent": len(ids),
        "distinct_ids_sent": len(wanted),
        "server_kills": len(kill_log),
        "stored_rows": rows,
        "lost": len(wanted - distinct),
        "duplicated": rows - len(distinct),
        "unexpected": len(distinct - wanted),
        "flush_ok": delivered,
        "elapsed_s": round(elapsed, 2),
        "tracking_s": round(tracked_s, 2),
        "throughput_eps": round(len(ids) / elapsed),
        "tracker": {
            name: getattr(stats, name)
            for name in (
                "tracked",
                "acked",
                "accepted",
                "duplicate",
                "rejected",
                "dropped",
                "spooled",
                "sent",
                "batches_sent",
                "batches_resent",
                "streams",
                "stream_errors",
                "pushbacks",
            )
        },
        "kills": kill_log,
    }


def metrics(result: dict[str, Any]) -> dict[str, float | int]:
    """The run's figures and the tracker's counters (``tracker_*``) as one record's metrics."""
    return numbers(result) | {f"tracker_{k}": v for k, v in numbers(result["tracker"]).items()}


def markdown(result: dict[str, Any], command: str, when: str) -> str:
    t = result["tracker"]
    verdict = "PASS" if result["lost"] == 0 and result["duplicated"] == 0 else "FAIL"
    sent, kills = result["events_sent"], result["server_kills"]
    row = " | ".join(
        [
            f"{sent:,}",
            str(kills),
            f"{result['stored_rows']:,}",
            str(result["lost"]),
            str(result["duplicated"]),
            f"{result['elapsed_s']} s",
            f"{result['throughput_eps']:,} events/s",
        ]
    )
    return f"""# Chaos delivery: {sent:,} events, {kills} server SIGKILLs

Command ({when}, {os.cpu_count()}-CPU VM, Python {platform.python_version()}):

    {command}

`eventwire serve` (SQLite, `--sqlite-synchronous full`) in a child process,
SIGKILLed {kills} times at even shares of acknowledged progress and restarted
on the same port; the async `Tracker` (disk spool on) tracked every event as
fast as one Python process could. Stored ids were read straight from the
SQLite file afterwards. Raw numbers: `history.jsonl` (bench `chaos_delivery`).

| events sent | server kills | stored | lost | duplicated | elapsed | throughput |
|------------:|-------------:|-------:|-----:|-----------:|--------:|-----------:|
| {row} |

**{verdict}**: {result["lost"]} lost, {result["duplicated"]} duplicated.

What the kills cost, from the tracker's counters: {t["stream_errors"]} broken
streams, {t["batches_resent"]:,} batches resent, {t["duplicate"]:,} events the
server had already stored when their resend arrived (acknowledged as duplicates,
not stored again), {t["spooled"]:,} event writes to the disk spool (spills
during outages, and memory overflow while tracking outpaced delivery),
{t["pushbacks"]} pushbacks, {t["dropped"]} dropped. Tracking all events took
{result["tracking_s"]} s of the {result["elapsed_s"]} s.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--no-write", action="store_true", help="print only; keep results")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="eventwire-chaos-") as tmp:
        result = asyncio.run(run(args.events, args.kills, Path(tmp)))
    command = " ".join(
        [".venv/bin/python bench/chaos_delivery.py"]
        + ([f"--events {args.events}"] if args.events != 1_000_000 else [])
        + ([f"--kills {args.kills}"] if args.kills != 20 else [])
    )
    when = dt.date.today().isoformat()
    print(json.dumps(result, indent=2))
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        this = Run.now(UNPINNED)
        publish([record(this, "chaos_delivery", f"{args.kills} kills", metrics(result))])
        (RESULTS / "chaos_delivery.md").write_text(markdown(result, command, when))
    if result["lost"] or result["duplicated"] or result["unexpected"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
