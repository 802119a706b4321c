"""SIGKILL at random moments loses at most the memory bound, and every drop is counted.

A fork server (``tests.support.tracker_child kill-points``) forks one worker
per kill point. The worker tracks events as fast as bursts allow into a spool
directory shared by every run, against a healthy server, a slow link or no
server at all, and is SIGKILLed at a random moment: mid-batch, mid-spill,
mid-replay of an earlier run's lane. Later workers adopt the lanes of the dead
ones; a last tracker in this process adopts whatever is left and delivers it.

Then, per kill point, from the server's SQLite file and the worker's files:
``lost = returned by track() - stored - reported dropped`` must stay within the
documented bound (``max_queue_events``); nothing is stored twice; nothing
reported dropped is stored; and the drop counter, the metric and ``on_drop``
agreed at every check the worker made.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sqlite3
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eventwire.client import Tracker, TrackerConfig
from eventwire.testing import FaultProxy, running_server
from tests.support.paths import ROOT

NOWHERE = "127.0.0.1:1"
KILL_POINTS = int(os.environ.get("EVENTWIRE_KILL_POINTS", "50"))
EVENTS_PER_RUN = 20_000


@dataclass
class Run:
    run: int
    scenario: str
    bound: int
    killed: bool = False


def stored_by_run(db: Path) -> dict[str, list[str]]:
    by_run: dict[str, list[str]] = {}
    with sqlite3.connect(db) as conn:
        for user, event_id in conn.execute("SELECT user_id, event_id FROM events"):
            by_run.setdefault(user, []).append(event_id)
    return by_run


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def command(rng: random.Random, run: int, targets: dict[str, str]) -> tuple[Run, dict[str, Any]]:
    scenario = rng.choice(sorted(targets))
    bound = rng.choice([1000, 2000, 5000])
    config = {
        "max_queue_events": bound,
        "max_batch_events": 500,
        "flush_interval": 0.02,
        "max_retry_delay": 0.2,
        "spool_segment_bytes": 64 << 10,
        # A small spool fills up and refuses new events: drops to count.
        "max_spool_bytes": rng.choice([256 << 10, 64 << 20, 64 << 20]),
        "adopt_interval": 0.2,
    }
    cmd = {
        "run": run,
        "target": targets[scenario],
        "config": config,
        "burst": 200,
        "pause": rng.uniform(0.001, 0.006),
        "delay": rng.uniform(0.0, 0.4),
    }
    return Run(run, scenario, bound), cmd


async def test_sigkill_at_random_points_loses_at_most_the_memory_bound(
    tmp_path: Path, db: Path, db_url: str
) -> None:
    seed = int(os.environ.get("EVENTWIRE_KILL_SEED", random.randrange(1 << 32)))  # noqa: S311
    # Kill points, not cryptography.
    rng = random.Random(seed)  # noqa: S311
    spool = tmp_path / "spool"
    out = tmp_path / "runs"
    runs: list[Run] = []
    async with running_server(store=db_url) as srv, FaultProxy(srv.address) as proxy:
        proxy.set_faults(latency=0.02, jitter=0.02)
        targets = {"healthy": srv.address, "slow": proxy.address, "down": NOWHERE}
        zygote = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.support.tracker_child",
            "kill-points",
            "-",
            str(spool),
            str(EVENTS_PER_RUN),
            str(out),
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "GRPC_VERBOSITY": "ERROR", "GRPC_ENABLE_FORK_SUPPORT": "false"},
        )
        assert zygote.stdin is not None
        assert zygote.stdout is not None
        try:
            for k in range(KILL_POINTS):
                run, cmd = command(rng, k, targets)
                zygote.stdin.write(json.dumps(cmd).encode() + b"\n")
                await zygote.stdin.drain()
                reply = json.loads(await asyncio.wait_for(zygote.stdout.readline(), 60))
                assert reply["run"] == k
                assert reply["started"], f"worker {k} failed before tracking (seed {seed})"
                run.killed = reply["killed"]
                runs.append(run)
            zygote.stdin.close()
            assert await asyncio.wait_for(zygote.wait(), 30) == 0
        finally:
            if zygote.returncode is None:
                zygote.kill()
                await zygote.wait()

        # A new process (this one) adopts every lane the dead workers left.
        config = TrackerConfig(spool_dir=spool, flush_interval=0.02)
        async with Tracker(srv.address, config) as adopter:
            assert await adopter.flush(timeout=60)
            adopted = adopter.stats
    assert adopted.dropped == 0
    assert not list(spool.glob("lane-*/*.seg")), "everything adopted was delivered and deleted"

    stored = stored_by_run(db)
    everything = [i for ids in stored.values() for i in ids]
    assert len(everything) == len(set(everything)), "an event was stored twice"
    losses: list[int] = []
    drops_seen = checks = 0
    for run in runs:
        assert run.killed, f"run {run.run} was not killed"
        run_dir = out / f"run-{run.run:03d}"
        returned = lines(run_dir / "ids")
        dropped = {line.split()[0] for line in lines(run_dir / "drops")}
        mine = set(stored.get(f"run{run.run}", []))
        # At most one event can be stored whose id the kill kept from its file.
        assert len(mine - set(returned)) <= 1
        assert not dropped & mine, f"run {run.run}: an event reported dropped was stored"
        lost = len(set(returned) - mine - dropped)
        losses.append(lost)
        assert lost <= run.bound, (
            f"run {run.run} ({run.scenario}) lost {lost} events, more than the documented "
            f"bound of {run.bound} (seed {seed})"
        )
        for check in map(json.loads, lines(run_dir / "checks")):
            assert check["dropped"] == check["hooked"] == check["metric"], check
            checks += 1
        drops_seen += len(dropped)
    summary = {
        "seed": seed,
        "kill_points": len(runs),
        "scenarios": {s: sum(r.scenario == s for r in runs) for s in targets},
        "loss_min": min(losses),
        "loss_median": statistics.median(losses),
        "loss_max": max(losses),
        "loss_over_bound_max": max(lost / r.bound for lost, r in zip(losses, runs, strict=True)),
        "loss_median_by_scenario": {
            s: statistics.median(x for x, r in zip(losses, runs, strict=True) if r.scenario == s)
            for s in targets
            if any(r.scenario == s for r in runs)
        },
        "returned_by_track": sum(len(lines(out / f"run-{r.run:03d}" / "ids")) for r in runs),
        "dropped_reported": drops_seen,
        "drop_checks_agreeing": checks,
        "stored": len(everything),
    }
    print("kill points:", json.dumps(summary))
