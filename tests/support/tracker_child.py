"""Tracker scenarios run in a fresh process, for tests that kill it, fork it, or let it exit.

Run as ``python -m tests.support.tracker_child MODE TARGET SPOOL_DIR N OUT``; it reports on
stdout, one JSON object per line. A fresh interpreter matters: gRPC cannot be
used after fork() in a process that already started it, and the test runner has.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from eventwire.client._tracker import SyncTracker, TrackerConfig


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


MODES = {
    "spool": spool_then_wait,
    "exit": exit_without_close,
    "fork": fork_after_use,
    "fork-lazy": fork_before_use,
}

if __name__ == "__main__":
    mode, target, spool_dir, count, out_path = sys.argv[1:6]
    MODES[mode](target, spool_dir, int(count), Path(out_path))
