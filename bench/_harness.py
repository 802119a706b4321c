"""What every benchmark shares: pinning, server CPU, ports, the machine, and one result format.

* **Pinning**: :func:`pinning` puts the server on CPU 0 and the load on CPU 1
  (``taskset`` from the server's start, so every thread and ``--workers``
  child inherits it; ``sched_setaffinity`` for this process), and says so in
  words that go into every record; with fewer than 2 CPUs or no ``taskset``
  nothing is pinned and the record says that instead.
* **CPU per request**: :mod:`_cpu` (``utime + stime`` of the server's whole
  process tree from ``/proc``) sampled around a window by :class:`CpuMeter`.
* **Servers**: :func:`free_port`, :func:`wait_ready` (a child is up when a
  probe such as :func:`healthz` answers) and :func:`eventwire_server`
  (``eventwire serve`` on ephemeral ports, pinned, learning its addresses from
  its log).
* **Records**: :func:`record` builds one JSON object per measured scenario::

      {"bench": "targets", "scenario": "U1", "revision": "0971e19...", "dirty": false,
       "date": "2026-12-07T05:40:00Z", "machine": {...}, "pinning": "...",
       "metrics": {"ratio": 0.76, "cpu_us": 212.0, ...}}

  :func:`publish` appends them to ``bench/results/history.jsonl`` (one line
  each, never rewritten), so two revisions compare with ``bench/compare.py``
  and a regression shows in ``git diff``. The ``.md`` tables stay the
  human-readable view.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _cpu import cpu_seconds

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
HISTORY = RESULTS / "history.jsonl"
SERVER_CPU, LOAD_CPU = "0", "1"
RECORD_KEYS = ("bench", "scenario", "revision", "dirty", "date", "machine", "pinning", "metrics")


# -- pinning --------------------------------------------------------------------------


@dataclass(frozen=True)
class Pinning:
    """Where the server and the load run; ``None`` for both when nothing is pinned."""

    server_cpu: str | None
    load_cpu: str | None

    @property
    def pinned(self) -> bool:
        return self.server_cpu is not None

    def server(self, argv: Sequence[str]) -> list[str]:
        """``argv`` started under ``taskset`` on the server's CPU (from its first instruction)."""
        return self._under(self.server_cpu, argv)

    def load(self, argv: Sequence[str]) -> list[str]:
        """``argv`` started under ``taskset`` on the load's CPU."""
        return self._under(self.load_cpu, argv)

    def launcher(self) -> list[str]:
        """The prefix for :class:`eventwire.testing._process.ServerProcess`'s ``launcher``."""
        return self.server([])

    def pin_self_to_load(self) -> None:
        """This process (and what it starts from now on) onto the load's CPU."""
        if self.load_cpu is not None:
            os.sched_setaffinity(0, {int(self.load_cpu)})

    def pin_pid_to_load(self, pid: int) -> None:
        if self.load_cpu is not None:
            os.sched_setaffinity(pid, {int(self.load_cpu)})

    def describe(self) -> str:
        if not self.pinned:
            return "NOT pinned (fewer than 2 CPUs or no taskset): server and load share cores"
        return (
            f"server on CPU {self.server_cpu} (taskset from its start: every thread and "
            f"worker), load on CPU {self.load_cpu}"
        )

    @staticmethod
    def _under(cpu: str | None, argv: Sequence[str]) -> list[str]:
        return ["taskset", "-c", cpu, *argv] if cpu is not None else list(argv)


def pinning(server_cpu: str | None = SERVER_CPU, load_cpu: str | None = LOAD_CPU) -> Pinning:
    """Server and load on their own CPUs when the machine allows it, else nothing pinned."""
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    if server_cpu is None or load_cpu is None or len(cpus) < 2 or not shutil.which("taskset"):
        return Pinning(None, None)
    return Pinning(server_cpu, load_cpu)


# -- CPU per request ------------------------------------------------------------------


class CpuMeter:
    """Server CPU seconds over a window: ``start()`` before the load, ``stop()`` after.

    Every pid is followed with its descendants, so a forking server is charged in full.
    """

    def __init__(self, *pids: int) -> None:
        self.pids = pids
        self._start = 0.0
        self.seconds = 0.0

    def _now(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids)

    def start(self) -> CpuMeter:
        self._start = self._now()
        return self

    def stop(self) -> float:
        self.seconds = self._now() - self._start
        return self.seconds

    def __enter__(self) -> CpuMeter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- servers --------------------------------------------------------------------------


def free_port() -> int:
    """A port free right now on the loopback (for servers that cannot bind port 0 and tell)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def eventwire_server(*args: str, pin: Pinning, **kwargs: Any) -> Any:
    """``eventwire serve`` in a child process on ephemeral ports, pinned to the server CPU.

    Returns an unstarted :class:`eventwire.testing._process.ServerProcess` (a
    context manager that kills it on exit, or ``start()`` then ``terminate()``
    and ``wait()`` to let it drain); ``kwargs`` go to it.
    """
    from eventwire.testing._process import ServerProcess

    return ServerProcess(*args, launcher=pin.launcher(), **kwargs)


def healthz(address: str) -> Callable[[], None]:
    """A probe for :func:`wait_ready`: ``GET http://address/healthz`` answers 2xx."""

    def probe() -> None:
        with urllib.request.urlopen(f"http://{address}/healthz", timeout=1):
            pass

    return probe


def wait_ready(
    proc: subprocess.Popen[bytes], probe: Callable[[], object], what: str, timeout: float = 60.0
) -> None:
    """Poll ``probe`` until it returns without raising; a dead child or the deadline
    ends the wait with an error naming ``what`` (the caller stops what it started)."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before it was ready")
        try:
            probe()
        except Exception as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} not ready after {timeout:g} s: {exc}") from exc
            time.sleep(0.1)
        else:
            return


# -- the machine and the revision -----------------------------------------------------


def cpu_model(cpuinfo: str | None = None) -> str:
    """The ``model name`` of ``/proc/cpuinfo`` (or of ``cpuinfo`` text given)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return platform.processor() or platform.machine()
    for line in cpuinfo.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def package_version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return ""


def machine() -> dict[str, Any]:
    """What the numbers were measured on; the same keys in every record."""
    return {
        "cpu_model": cpu_model(),
        "nproc": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "grpcio": package_version("grpcio"),
    }


def revision(root: Path = ROOT) -> tuple[str, bool]:
    """The checked-out commit and whether tracked files differ from it (``("", False)``
    outside a git checkout)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "", False
    # Results written by the benchmark itself do not make the code under test dirty.
    changed = [line[3:] for line in status.splitlines() if line[3:]]
    return head, any(not path.startswith("bench/results/") for path in changed)


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- records --------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """What every record of one invocation shares: revision, machine, date, pinning."""

    revision: str
    dirty: bool
    date: str
    machine: Mapping[str, Any]
    pinning: str
    command: str = ""

    @classmethod
    def now(cls, pin: Pinning | str, command: Sequence[str] | None = None) -> Run:
        rev, dirty = revision()
        argv = sys.argv if command is None else command
        return cls(
            revision=rev,
            dirty=dirty,
            date=utc_now(),
            machine=machine(),
            pinning=pin if isinstance(pin, str) else pin.describe(),
            command=" ".join(["bench/" + Path(argv[0]).name, *argv[1:]]) if argv else "",
        )

    def header(self) -> dict[str, Any]:
        """The shared fields, for a benchmark's detailed snapshot file too."""
        return {
            "revision": self.revision,
            "dirty": self.dirty,
            "date": self.date,
            "machine": dict(self.machine),
            "pinning": self.pinning,
            "command": self.command,
        }


def _metric(name: str, value: object) -> float | int:
    # bool is an int to Python but not a measurement; None and strings are not either.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"metric {name!r} must be a number, got {value!r}")
    # Four decimals keep every figure we print and keep history lines short enough to diff.
    return round(value, 4) if isinstance(value, float) else value


def record(
    run: Run,
    bench: str,
    scenario: str,
    metrics: Mapping[str, object],
    **context: object,
) -> dict[str, Any]:
    """One measured scenario. ``metrics`` are numbers only (rates, CPU µs per request
    or event, latencies in ms, ratios); what describes the scenario without being
    measured (a store, a batch size) goes in ``context`` and lands under ``"context"``."""
    if not bench or not scenario:
        raise ValueError("a record needs a bench and a scenario")
    out: dict[str, Any] = {
        "bench": bench,
        "scenario": scenario,
        **{k: v for k, v in run.header().items() if k != "command"},
        "metrics": {name: _metric(name, value) for name, value in metrics.items()},
    }
    if context:
        out["context"] = dict(context)
    if run.command:
        out["command"] = run.command
    return out


def to_line(rec: Mapping[str, Any]) -> str:
    """One record as one JSON line (keys in a fixed order, so lines diff well)."""
    missing = [key for key in RECORD_KEYS if key not in rec]
    if missing:
        raise ValueError(f"record lacks {missing}")
    ordered = {key: rec[key] for key in RECORD_KEYS} | {
        k: v for k, v in rec.items() if k not in RECORD_KEYS
    }
    return json.dumps(ordered, separators=(",", ":"), ensure_ascii=False)


def read_history(text: str) -> list[dict[str, Any]]:
    """Records from JSON-lines text (blank lines skipped)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def publish(records: Iterable[Mapping[str, Any]], path: Path = HISTORY) -> int:
    """Append ``records`` to the history; returns how many were written."""
    lines = [to_line(rec) for rec in records]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        out.writelines(line + "\n" for line in lines)
    if lines:
        shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        print(f"{len(lines)} record(s) appended to {shown}", file=sys.stderr)
    return len(lines)


def numbers(values: Mapping[str, object]) -> dict[str, float | int]:
    """The numeric entries of a benchmark's own result dict (the rest is context)."""
    return {
        k: v for k, v in values.items() if isinstance(v, int | float) and not isinstance(v, bool)
    }


def strings(values: Mapping[str, object]) -> dict[str, object]:
    """The entries of a result dict that describe rather than measure."""
    return {k: v for k, v in values.items() if isinstance(v, str | bool)}
