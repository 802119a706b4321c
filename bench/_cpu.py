"""Server CPU per request, from ``/proc``: the figure that stays put when the machine does not.

Throughput on a shared 2-core VM moves by ~2x between runs; the CPU a server
spends per answered request moves far less, and it is what a profile explains.
:func:`cpu_seconds` is ``utime + stime`` (``/proc/<pid>/stat`` fields 14 and
15, every thread of the process, live or ended) of a process and of all its
descendants (``--workers`` children), so a server that forks is charged in full.
Sample it just before and just after a load window, divide by what the server
answered in that window (counted by the server where it can be), and read the
result in microseconds with :func:`per_request_us`.

Resolution is one clock tick (``SC_CLK_TCK``, usually 10 ms) per process, so a
window should hold at least a few hundred ticks: one busy core for 5 s is 500.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

TICK = 1.0 / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (children of any of its threads)."""
    out = [pid]
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split():
                    out += descendants(int(child))
    return out


def stat_ticks(stat: str) -> int:
    """``utime + stime`` in clock ticks from the text of one ``/proc/<pid>/stat``."""
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def _own_seconds(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # ended between listing and reading: its time is gone with it
        return 0.0
    return stat_ticks(stat) * TICK


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and all its descendants so far."""
    return sum(_own_seconds(p) for p in descendants(pid))


def per_request_us(seconds: float, requests: float) -> float:
    """CPU microseconds per request (0 when nothing was answered)."""
    return seconds * 1e6 / requests if requests > 0 else 0.0
