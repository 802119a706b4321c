"""Tracker scenarios run in a fresh process, for tests that kill it, fork it, or let it exit.

Run as ``python -m tests.support.tracker_child MODE TARGET SPOOL_DIR N OUT``; it reports on
stdout, one JSON object per line. A fresh interpreter matters: gRPC cannot be
used after fork() in a process that already started it, and the test runner has.

``kill-points`` is a fork server: it imports eventwire once, never starts gRPC,
and for every command read from stdin forks a worker that tracks events until
the fork server SIGKILLs it at the moment the command names. Each worker writes
every id ``track()`` returned, and every drop its ``on_drop`` saw, to files
with one ``write()`` each: the kernel keeps them when the process is killed.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any, NoReturn

from eventwire.client import ClientMetrics, DroppedEvent, SyncTracker, TrackerConfig


def say(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def stats(tracker: SyncTracker) -> dict[str, int]:
    s = tracker.stats
    return {
        "tracked": s.tracked,
        "acked": s.acked,
        "spooled": s.spooled,
        "spool_events": s.spool_events,
        "memory_events": s.memory_events,
        "outstanding": s.outstanding,
        "recovered": s.recovered,
    }


def write_ids(path: Path, ids: list[str]) -> None:
    with path.open("a") as f:
        f.write("".join(f"{i}\n" for i in ids))
        f.flush()
        os.fsync(f.fileno())


def spool_then_wait(target: str, spool: str, n: int, out: Path) -> None:
    """Track ``n`` events, then report progress until killed."""
    config = TrackerConfig(spool_dir=spool, flush_interval=0.05, max_retry_delay=0.2)
    tracker = SyncTracker(target, config)
    ids = [tracker.track("chaos", properties={"i": str(i)}) for i in range(n)]
    write_ids(out, ids)
    say(event="tracked", **stats(tracker))
    while True:  # until SIGKILL
        say(event="stats", **stats(tracker))
        time.sleep(0.02)


def exit_without_close(target: str, spool: str, n: int, out: Path) -> None:
    """Track and return: the atexit hook must deliver."""
    tracker = SyncTracker(target, TrackerConfig(flush_interval=60))
    write_ids(out, [tracker.track("atexit") for _ in range(n)])
    say(event="tracked", **stats(tracker))


def in_child(tracker: SyncTracker, n: int, write_end: int) -> None:
    fresh = stats(tracker)
    child = [tracker.track("child") for _ in range(n)]
    after = stats(tracker)
    lane = str(tracker.spool_lane)
    closed = tracker.close(timeout=5)
    report = {"fresh": fresh, "after": after, "lane": lane, "closed": closed, "ids": child}
    os.write(write_end, json.dumps(report).encode())


def fork_after_use(target: str, spool: str, n: int, out: Path) -> None:
    """The parent used gRPC before fork(): the child spools, the parent delivers its lane."""
    config = TrackerConfig(spool_dir=spool, flush_interval=60, adopt_interval=0.1)
    tracker = SyncTracker(target, config)
    first = [tracker.track("parent") for _ in range(n)]
    assert tracker.flush(timeout=20)
    # Queued in the parent's memory at the moment of fork: the child must not send them.
    queued = [tracker.track("parent-queued") for _ in range(n)]
    parent_lane = str(tracker.spool_lane)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        try:
            in_child(tracker, n, write_end)
        except BaseException:  # noqa: BLE001 - the child must never return into the parent's code
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 1 << 16):
        chunks.append(chunk)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    if not chunks:
        raise SystemExit(f"the forked child reported nothing; wait status {status}")
    child = json.loads(b"".join(chunks))
    # The child's lane is free now: the parent adopts and delivers it.
    deadline = time.monotonic() + 20
    while tracker.stats.recovered < n and time.monotonic() < deadline:
        time.sleep(0.01)
    delivered = tracker.flush(timeout=20)
    write_ids(out, first + queued + child["ids"])
    say(
        event="done",
        status=status,
        child=child,
        parent_lane=parent_lane,
        delivered=delivered,
        parent=stats(tracker),
        close=tracker.close(timeout=10),
    )


def fork_before_use(target: str, spool: str, n: int, out: Path) -> None:
    """The parent built a tracker but never started it: the child delivers by itself."""
    tracker = SyncTracker(target, TrackerConfig(spool_dir=spool, flush_interval=60))
    pid = os.fork()
    if pid == 0:
        ids = [tracker.track("child") for _ in range(n)]
        write_ids(out, ids)
        code = 0 if tracker.close(timeout=20) else 3
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    say(event="done", status=status, parent=stats(tracker))


def _append(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)


def _dropped_metric(metrics: ClientMetrics, target: str) -> float:
    return (
        metrics.registry.get_sample_value("eventwire_tracker_dropped_total", {"target": target})
        or 0.0
    )


def kill_point_worker(
    spool: str, n: int, run_dir: Path, cmd: dict[str, Any], ready: int
) -> NoReturn:
    """Track up to ``n`` events in bursts until SIGKILLed; every fact goes to a file at once."""
    ids = _append(run_dir / "ids")
    drops = _append(run_dir / "drops")
    checks = _append(run_dir / "checks")
    hooked = 0

    def on_drop(drop: DroppedEvent) -> None:
        nonlocal hooked
        hooked += 1
        os.write(drops, f"{drop.event_id} {drop.reason}\n".encode())

    target = cmd["target"]
    metrics = ClientMetrics()
    tracker = SyncTracker(target, TrackerConfig(spool_dir=spool, **cmd["config"]), on_drop=on_drop)
    metrics.watch_tracker(tracker)
    tracker.start()
    os.write(ready, b"r")
    user = f"run{cmd['run']}"
    burst, pause = cmd["burst"], cmd["pause"]
    for i in range(n):
        event_id = tracker.track("killed", user_id=user, properties={"i": str(i)})
        os.write(ids, event_id.encode() + b"\n")
        if i % burst == burst - 1:
            # Drops happen on this thread (track() refuses the new event), so
            # between two calls the counter, the metric and the hook agree exactly.
            stats = tracker.stats
            seen = {"dropped": stats.dropped, "metric": _dropped_metric(metrics, target)}
            os.write(checks, json.dumps({**seen, "hooked": hooked}).encode() + b"\n")
            time.sleep(pause)
    time.sleep(3600)  # until SIGKILL
    os._exit(0)


def kill_points(target: str, spool: str, n: int, out: Path) -> None:
    """Fork a worker per command on stdin and SIGKILL it ``delay`` seconds after it started."""
    for line in sys.stdin:
        cmd = json.loads(line)
        run_dir = out / f"run-{cmd['run']:03d}"
        run_dir.mkdir(parents=True)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            try:
                kill_point_worker(spool, n, run_dir, cmd, write_end)
            except BaseException:  # noqa: BLE001 - the worker must never return into the loop
                traceback.print_exc()
            os._exit(1)
        os.close(write_end)
        started = os.read(read_end, 1) == b"r"
        os.close(read_end)
        if started:
            time.sleep(cmd["delay"])
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        say(
            run=cmd["run"],
            started=started,
            killed=os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL,
        )


MODES = {
    "spool": spool_then_wait,
    "exit": exit_without_close,
    "fork": fork_after_use,
    "fork-lazy": fork_before_use,
    "kill-points": kill_points,
}

if __name__ == "__main__":
    mode, target, spool_dir, count, out_path = sys.argv[1:6]
    MODES[mode](target, spool_dir, int(count), Path(out_path))
