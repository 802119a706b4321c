"""``make bench``, part one: issue 16's targets, each a ratio of two servers side by side.

    .venv/bin/python bench/targets.py                          # 3 repeats x 5 s, ~5 minutes
    .venv/bin/python bench/targets.py --only U1,B1 --repeats 5
    .venv/bin/python bench/targets.py --profile --label after  # also py-spy under U1 and B1 load

* U1: durable unary ``TrackEvent`` at 64 in flight, eventwire's defaults, against
  a bare ``grpc.aio`` + uvloop server that parses, replies and stores nothing
  (bench/_servers.py): throughput >= 0.9x, server CPU per call <= 1.15x.
* U2: the same at 1 in flight with ``--sqlite-synchronous normal``, against the
  bare server at 1 in flight: throughput >= 0.75x.
* U3: unary at 4 and 16 in flight against eventwire at ``--baseline-rev``
  (e5aa193, main when issue 16 was filed): >= 1.0x, no regression.
* B1: ``TrackEvents`` with 1,000-event batches, 8 in flight, against raw ASGI +
  orjson JSON batches doing the same durable work (bench/ref_json_batch.py):
  events/s >= 1.2x.
* T1: unary at 64 in flight with 10 % head sampling and with every call traced
  (OTLP to a real receiver), against tracing off: cost <= 5 % and <= 20 %.
* C1: one eventwire, its HTTP door: unary ``TrackEvent`` as Connect
  ``application/proto`` vs ``POST /v1/events`` (h2load over HTTP/1.1, 16
  connections): >= 1.2x req/s, <= 0.85x CPU per request; 1k-event batches as
  Connect ``TrackEvents`` vs ``POST /v1/events:batch``: >= 1.5x events/s.

How (shared with bench/run.py, whose pieces this reuses): every server runs
under ``taskset -c 0`` from its start (all its threads and workers), every load
generator and the OTLP receiver under ``taskset -c 1``. Unary load is h2load
with a pre-encoded frame; successes are counted by the server
(``grpc_server_handled_total{grpc_code="OK"}``, the bare server's own counter),
since h2load's 2xx ignores ``grpc-status``. Batches come from bench/_load.py
(fresh event ids, so every event is really inserted). Beside every rate goes the
server's CPU per request: ``utime + stime`` of the server's whole process tree
over the load window, divided by the requests (or events) it answered
(bench/_cpu.py); it moves far less than throughput on a shared machine. Each
repeat starts every contender afresh (the two sides of a ratio with the same
history: a fresh database, the same workloads before, ``sync`` after the last
server stopped), in an order rotated per repeat and reversed every other; a
ratio is taken within each repeat, and the report gives the median ratio with
its min-max. The baseline revision runs from a ``git archive`` of its ``src/``
on ``PYTHONPATH``, with this checkout's .venv.

Writes bench/results/targets.json and targets.md, and the README's
Performance section (bench/report.py), and prints the table; ``--only`` some
targets writes targets-<ids>.json and .md and leaves those alone.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _connect
import report
import run
from _cpu import TICK, stat_ticks
from _harness import Run, free_port, healthz, pinning, publish, record, wait_ready
from run import Server

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
BASELINE_REV = "e5aa193"
TARGET_IDS = ("U1", "U2", "U3", "B1", "T1", "C1")


@dataclass(frozen=True)
class Spec:
    id: str
    label: str
    ours: tuple[str, str]  # (contender, workload)
    ref: tuple[str, str]
    metric: str  # "rate" or "cpu_us": the ratio is ours / ref of this
    goal: float
    at_least: bool = True


SPECS = (
    Spec("U1", "durable unary, 64 in flight: throughput vs bare grpc.aio",
         ("eventwire", "unary-64"), ("grpc-aio", "unary-64"), "rate", 0.90),
    Spec("U1", "durable unary, 64 in flight: CPU per call vs bare grpc.aio",
         ("eventwire", "unary-64"), ("grpc-aio", "unary-64"), "cpu_us", 1.15, at_least=False),
    Spec("U2", "unary, 1 in flight, synchronous=normal, vs bare grpc.aio",
         ("eventwire-normal", "unary-1"), ("grpc-aio", "unary-1"), "rate", 0.75),
    Spec("U3", "unary, 4 in flight, vs eventwire at the baseline",
         ("eventwire-u3", "unary-4"), ("eventwire-base", "unary-4"), "rate", 1.0),
    Spec("U3", "unary, 16 in flight, vs eventwire at the baseline",
         ("eventwire-u3", "unary-16"), ("eventwire-base", "unary-16"), "rate", 1.0),
    Spec("B1", "TrackEvents, 1k-event batches, 8 in flight, vs raw-ASGI JSON",
         ("eventwire-b1", "batch-grpc"), ("ref-json-batch", "batch-http"), "rate", 1.2),
    Spec("T1", "tracing 10 % head-sampled, 64 in flight, vs tracing off",
         ("eventwire-trace10", "unary-64"), ("eventwire", "unary-64"), "rate", 0.95),
    Spec("T1", "tracing every call, 64 in flight, vs tracing off",
         ("eventwire-trace100", "unary-64"), ("eventwire", "unary-64"), "rate", 0.80),
    Spec("C1", "HTTP door, unary TrackEvent: Connect application/proto vs JSON POST /v1/events",
         ("eventwire-c1", "connect-unary"), ("eventwire-c1", "json-unary"), "rate", 1.2),
    Spec("C1", "HTTP door, unary TrackEvent: CPU per request, Connect proto vs JSON",
         ("eventwire-c1", "connect-unary"), ("eventwire-c1", "json-unary"), "cpu_us", 0.85,
         at_least=False),
    Spec("C1", "HTTP door, 1k-event batches: Connect TrackEvents (proto) vs JSON batch route",
         ("eventwire-c1", "connect-batch"), ("eventwire-c1", "json-batch"), "rate", 1.5),
)  # fmt: skip

# A contender is one server start per repeat, running its workloads in this order. The two
# sides of a ratio see the same history (a fresh database, the same workloads before), so
# eventwire with its defaults is three contenders: for U1 and T1, for U3, for B1.
WORKLOAD_ORDER = (
    "unary-64", "unary-16", "unary-4", "unary-1", "batch-grpc", "batch-http",
    "connect-unary", "json-unary", "connect-batch", "json-batch",
)  # fmt: skip
C1_CONNECTIONS = 16
"""C1's unary load: HTTP/1.1 connections, one request in flight on each (bench/_connect.py)."""
CONTENDER_ORDER = (
    "eventwire", "grpc-aio", "eventwire-normal", "eventwire-u3", "eventwire-base",
    "eventwire-b1", "ref-json-batch", "eventwire-trace10", "eventwire-trace100", "eventwire-c1",
)  # fmt: skip


def plan(only: set[str]) -> dict[str, list[str]]:
    """contender -> the workloads it runs, for the chosen targets."""
    wanted: dict[str, set[str]] = {}
    for spec in SPECS:
        if spec.id in only:
            for contender, workload in (spec.ours, spec.ref):
                wanted.setdefault(contender, set()).add(workload)
    return {
        c: [w for w in WORKLOAD_ORDER if w in wanted[c]] for c in CONTENDER_ORDER if c in wanted
    }


def split(in_flight: int) -> tuple[int, int]:
    """h2load connections and streams per connection: up to 8 streams on a connection,
    as one client channel multiplexes them."""
    clients = max(1, in_flight // 8)
    return clients, in_flight // clients


EXPORT_THREAD = "OtelBatchSpanRecordProcessor"  # the SDK's BatchSpanProcessor thread


def thread_id(pid: int, name: str) -> int | None:
    """The OS id of ``pid``'s Python thread called ``name`` (py-spy: Python 3.11 does not
    name its threads for the kernel), or None."""
    spy = shutil.which("py-spy") or str(Path(run.PYTHON).parent / "py-spy")
    try:
        out = subprocess.run(
            [spy, "dump", "--pid", str(pid)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(rf'^Thread (\d+) \(\w+\): "{name}"', out, re.MULTILINE)
    return int(found.group(1)) if found else None


def thread_seconds(pid: int, tid: int) -> float:
    """User + system CPU seconds so far of thread ``tid`` of ``pid``."""
    try:
        return stat_ticks(Path(f"/proc/{pid}/task/{tid}/stat").read_text()) * TICK
    except OSError:
        return 0.0


def clean_env() -> dict[str, str]:
    """The environment without EVENTWIRE_* and OTEL_* settings: defaults mean defaults."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("EVENTWIRE_", "OTEL_"))}


def extract_baseline(rev: str, into: Path) -> tuple[str, Path]:
    """``rev``'s src/ in ``into`` (git archive: no worktree is registered in the shared .git)."""
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--verify", f"{rev}^{{commit}}"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", commit, "src"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    src = into / "src"
    imported = subprocess.run(
        [run.PYTHON, "-c", "import eventwire; print(eventwire.__file__)"],
        env={**clean_env(), "PYTHONPATH": str(src)}, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    if not Path(imported).resolve().is_relative_to(src.resolve()):
        raise RuntimeError(f"PYTHONPATH={src} still imports eventwire from {imported}")
    return commit, src


def start_ref_json_batch(tmp: Path, cpus: str | None, synchronous: str) -> Server:
    port = free_port()
    db = tmp / f"ref-json-batch-{port}.db"
    argv = [run.PYTHON, str(BENCH / "ref_json_batch.py"), "--port", str(port),
            "--db", str(db), "--synchronous", synchronous]  # fmt: skip
    proc = subprocess.Popen(run.pinned(cpus, argv), stdout=subprocess.DEVNULL)
    server = Server("ref-json-batch", proc, http=f"127.0.0.1:{port}", db=db, pids=[proc.pid])
    try:
        wait_ready(proc, healthz(server.http), "bench/ref_json_batch.py")
    except RuntimeError:
        server.stop()
        raise
    return server


class Targets:
    def __init__(self, args: argparse.Namespace, tmp: Path, tools: dict[str, str]) -> None:
        self.args = args
        self.tmp = tmp
        self.tools = tools
        self.frame = run.grpc_frame(tmp)
        self.runs: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.baseline_src: Path | None = None
        self.receiver: Any = None
        from eventwire.config import ServerConfig

        self.synchronous = ServerConfig().sqlite_synchronous

    # -- servers ---------------------------------------------------------------------

    def _eventwire_env(self, name: str) -> tuple[list[str], dict[str, str]]:
        env = clean_env()
        if name == "eventwire-normal":
            return ["--sqlite-synchronous", "normal"], env
        if name == "eventwire-base":
            assert self.baseline_src is not None
            return [], env | {"PYTHONPATH": str(self.baseline_src)}
        if name.startswith("eventwire-trace"):
            env |= {
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{self.receiver.port}",
                "OTEL_EXPORTER_OTLP_INSECURE": "true",
            }
            if name == "eventwire-trace10":
                env |= {
                    "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                    "OTEL_TRACES_SAMPLER_ARG": "0.1",
                }
            return ["--trace-exporter", "otlp"], env
        return [], env

    @contextlib.contextmanager
    def server(self, name: str) -> Iterator[Server]:
        cpu = self.args.server_cpu
        if name == "grpc-aio":
            srv = run.start_baseline("grpc-aio", self.tmp, cpu, self.synchronous)
        elif name == "ref-json-batch":
            srv = start_ref_json_batch(self.tmp, cpu, self.synchronous)
        else:
            extra, env = self._eventwire_env(name)
            srv = run.start_eventwire(self.tmp, cpu, *extra, name=name, env=env)
        try:
            yield srv
        finally:
            code = srv.stop()
            # The next server's fsyncs must not wait behind this one's writeback.
            os.sync()
            # eventwire must drain and exit 0; uvicorn re-raises the SIGTERM it caught.
            if code != 0 and (name.startswith("eventwire") or code != -signal.SIGTERM):
                self.notes.append(f"{name} exited with {code} after SIGTERM")

    # -- measuring -------------------------------------------------------------------

    def measure(self, srv: Server, workload: str) -> dict[str, float] | None:
        d, cpu = self.args.duration, self.args.client_cpu
        if workload in ("connect-unary", "json-unary"):  # C1: the HTTP door, both doors
            if not self.tools["h2load"]:
                return None
            target = _connect.bodies(self.tmp)[workload]
            result = _connect.http_unary(
                srv.http, srv.proc.pid, target, connections=C1_CONNECTIONS, seconds=d, cpus=cpu
            )
            return result | {"rate": result["rps"]}
        if workload in ("connect-batch", "json-batch"):
            protocol = "connect" if workload == "connect-batch" else "http"
            result = run.batch_load(
                protocol, srv.http, seconds=d, cpus=cpu, server_pid=srv.proc.pid
            )
            return result | {"rate": result["events_per_s"]}
        if workload.startswith("unary-"):
            if not self.tools["h2load"]:
                return None
            clients, streams = split(int(workload.split("-")[1]))
            # The span exporter's own thread, apart: what exporting costs, beside making spans.
            # Its window also holds h2load's warm-up (~5 % more calls than counted).
            tid = None
            if srv.name.startswith("eventwire-trace"):
                tid = thread_id(srv.proc.pid, EXPORT_THREAD)
            exported = thread_seconds(srv.proc.pid, tid) if tid else 0.0
            result = run.h2load(
                srv, self.frame, self.tmp, clients=clients, streams=streams, seconds=d, cpus=cpu
            )
            if tid and result.get("ok"):
                exported = thread_seconds(srv.proc.pid, tid) - exported
                result["export_cpu_us"] = exported * 1e6 / result["ok"]
            if result["errors"] > 0.01 * result["sent"]:
                self.notes.append(
                    f"{srv.name} {workload}: {result['errors']:.0f} of {result['sent']:.0f} "
                    "calls not answered OK"
                )
            return result | {"rate": result["rps"]}
        protocol, target = ("grpc", srv.grpc) if workload == "batch-grpc" else ("http", srv.http)
        result = run.batch_load(protocol, target, seconds=d, cpus=cpu, server_pid=srv.proc.pid)
        return result | {"rate": result["events_per_s"]}

    def one_repeat(self, repeat: int, workloads: dict[str, list[str]]) -> None:
        names = list(workloads)
        shift = repeat % len(names)
        order = names[shift:] + names[:shift]
        # Rotating alone keeps neighbours together; reversing every other repeat changes
        # which contender each one follows.
        for name in reversed(order) if repeat % 2 else order:
            spans_before = self.receiver.spans() if name.startswith("eventwire-trace") else 0
            recorded: list[dict[str, Any]] = []
            # One server runs C1's two doors: which goes first alternates between repeats.
            mine = workloads[name]
            if name == "eventwire-c1" and repeat % 2:
                mine = [*reversed(mine[:2]), *reversed(mine[2:])]
            with self.server(name) as srv:
                for workload in mine:
                    result = self.measure(srv, workload)
                    if result is None:
                        continue
                    row = {"contender": name, "workload": workload, "repeat": repeat, **result}
                    recorded.append(row)
                    unit = "ev/s" if "batch" in workload else "req/s"
                    per = "event" if "batch" in workload else "call"
                    print(
                        f"repeat {repeat + 1}/{self.args.repeats} {name:>18} {workload:>10}: "
                        f"{row['rate']:>9,.0f} {unit}, {row.get('cpu_us', 0):7.1f} µs CPU/{per}"
                        + (f" ({row['export_cpu_us']:.1f} exporting)" if "export_cpu_us" in row
                           else ""),
                        file=sys.stderr, flush=True,
                    )  # fmt: skip
                calls = srv.ok_count() if name.startswith("eventwire") else 0.0
            if name.startswith("eventwire-trace") and calls:
                # The server flushes its spans before it exits: count them after stop().
                spans = (self.receiver.spans() - spans_before) / calls
                for row in recorded:
                    row["spans_per_call"] = spans
            self.runs += recorded

    # -- profiles --------------------------------------------------------------------

    def profile(self, target: str) -> str | None:
        """py-spy of eventwire (default settings) under U1's or B1's load."""
        spy = shutil.which("py-spy") or str(Path(run.PYTHON).parent / "py-spy")
        if not Path(spy).exists():
            self.notes.append("profile SKIPPED: py-spy not found")
            return None
        seconds = self.args.profile_seconds
        with self.server("eventwire") as srv:
            if target == "U1":
                load = [
                    "h2load", "-c", "8", "-m", "8", "-d", str(self.frame),
                    "-H", "content-type: application/grpc", "-H", "te: trailers",
                    "-D", str(int(seconds) + 3), f"http://{srv.grpc}{run.TRACK}",
                ]  # fmt: skip
                what = "U1 (unary TrackEvent, 64 in flight"
            else:
                load = [run.PYTHON, str(BENCH / "_load.py"), "grpc", srv.grpc,
                        "--seconds", str(seconds + 3), "--warmup", "0.5"]  # fmt: skip
                what = "B1 (TrackEvents, 1k-event batches, 8 in flight"
            raw = self.tmp / f"profile-{target}.txt"
            gen = subprocess.Popen(
                run.pinned(self.args.client_cpu, load), stdout=subprocess.DEVNULL
            )
            time.sleep(1.0)
            done = subprocess.run(
                [spy, "record", "--pid", str(srv.proc.pid), "--duration", str(int(seconds)),
                 "--rate", "250", "--format", "raw", "--threads", "--nonblocking",
                 "-o", str(raw)],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            gen.wait()
        if done.returncode != 0:
            self.notes.append(f"py-spy failed: {done.stderr.strip()[-300:]}")
            return None
        out = RESULTS / f"profile-{target.lower()}-{self.args.label}.txt"
        out.write_text(run.summarize_profile(raw, f"{what}; label {self.args.label})"))
        return str(out.relative_to(ROOT))


# -- summary --------------------------------------------------------------------------


def _stat(values: list[float]) -> dict[str, Any]:
    if not values:
        return {}
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "runs": values}  # fmt: skip


def summarize(runs: list[dict[str, Any]], only: set[str]) -> list[dict[str, Any]]:
    by: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
    for r in runs:
        by.setdefault((r["contender"], r["workload"]), {})[r["repeat"]] = r
    out = []
    for spec in SPECS:
        if spec.id not in only:
            continue
        ours, ref = by.get(spec.ours, {}), by.get(spec.ref, {})
        both = sorted(set(ours) & set(ref))
        ratios = [
            ours[i][spec.metric] / ref[i][spec.metric] for i in both if ref[i].get(spec.metric)
        ]
        ratio = _stat(ratios)
        met = None
        if ratio:
            met = ratio["median"] >= spec.goal if spec.at_least else ratio["median"] <= spec.goal
        out.append(
            {
                "id": spec.id,
                "label": spec.label,
                "ours": {"contender": spec.ours[0], "workload": spec.ours[1]},
                "ref": {"contender": spec.ref[0], "workload": spec.ref[1]},
                "unit": "ev/s" if "batch" in spec.ours[1] else "req/s",
                "metric": spec.metric,
                "goal": spec.goal,
                "at_least": spec.at_least,
                "ratio": ratio,
                "ours_rate": _stat([ours[i]["rate"] for i in sorted(ours)]),
                "ref_rate": _stat([ref[i]["rate"] for i in sorted(ref)]),
                "ours_cpu_us": _stat([ours[i].get("cpu_us", 0.0) for i in sorted(ours)]),
                "ref_cpu_us": _stat([ref[i].get("cpu_us", 0.0) for i in sorted(ref)]),
                "ours_export_cpu_us": _stat(
                    [ours[i]["export_cpu_us"] for i in sorted(ours) if "export_cpu_us" in ours[i]]
                ),
                "ours_spans_per_call": _stat(
                    [ours[i]["spans_per_call"] for i in sorted(ours) if "spans_per_call" in ours[i]]
                ),
                "met": met,
            }
        )
    return out


def records(
    this: Run, targets: list[dict[str, Any]], runs: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """History records: each target's ratio (median, min, max over repeats) with both
    sides' rate and CPU per request, then every measured run as it came."""
    out = []
    for t in targets:
        if not t["ratio"]:
            continue
        metrics = {
            "ratio": t["ratio"]["median"],
            "ratio_min": t["ratio"]["min"],
            "ratio_max": t["ratio"]["max"],
        }
        for side in ("ours_rate", "ref_rate", "ours_cpu_us", "ref_cpu_us"):
            if t[side]:
                metrics[side] = t[side]["median"]
        scenario = f"{t['id']} {t['ours']['workload']} {t['metric']}"
        out.append(
            record(
                this, "targets", scenario, metrics, label=t["label"], goal=t["goal"], met=t["met"]
            )
        )
    for r in runs:
        measured = {k: v for k, v in r.items() if k not in ("contender", "workload", "repeat")}
        scenario = f"run {r['workload']}/{r['contender']}"
        out.append(record(this, "targets", scenario, measured, repeat=r["repeat"]))
    return out


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0915 - one linear script
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--only", default=",".join(TARGET_IDS), help="e.g. U1,B1")
    parser.add_argument("--baseline-rev", default=BASELINE_REV, help="U3's reference revision")
    parser.add_argument("--server-cpu", default="0")
    parser.add_argument("--client-cpu", default="1")
    parser.add_argument("--profile", action="store_true", help="py-spy under U1 and B1 load too")
    parser.add_argument("--profile-seconds", type=float, default=10.0)
    parser.add_argument("--label", default="now", help="profile file suffix, e.g. before/after")
    parser.add_argument(
        "--out",
        type=Path,
        help="default: targets.json for every target, targets-<ids>.json for --only some"
        " (a partial run leaves the full record and the README alone)",
    )
    args = parser.parse_args(argv)
    only = {t.strip().upper() for t in args.only.split(",") if t.strip()}
    if unknown := only - set(TARGET_IDS):
        parser.error(f"unknown targets {sorted(unknown)}; choose from {', '.join(TARGET_IDS)}")

    from rich.console import Console

    tools = run.ensure_tools(Console(stderr=True))
    cpus = sorted(os.sched_getaffinity(0))
    pin = pinning(args.server_cpu, args.client_cpu)
    args.server_cpu, args.client_cpu = pin.server_cpu, pin.load_cpu
    where = (
        f"server pinned to CPU {args.server_cpu} (taskset from its start: every thread and "
        f"worker); load generators and the OTLP receiver pinned to CPU {args.client_cpu}"
        if pin.pinned
        else pin.describe()
    )
    this = Run.now(where, ["bench/targets.py", *(argv if argv is not None else sys.argv[1:])])
    print(f"targets {','.join(sorted(only))}: {where}", file=sys.stderr)
    workloads = plan(only)
    started = time.time()
    profiles: list[str] = []
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="eventwire-targets-") as tmp_name:
        tmp = Path(tmp_name)
        t = Targets(args, tmp, tools)
        commit = ""
        if "eventwire-base" in workloads:
            commit, t.baseline_src = extract_baseline(args.baseline_rev, tmp / "baseline")
            print(f"U3 baseline: {commit[:12]} from {t.baseline_src}", file=sys.stderr)
        if any(name.startswith("eventwire-trace") for name in workloads):
            from tracing_overhead import Receiver

            t.receiver = Receiver()
            pin.pin_pid_to_load(t.receiver._proc.pid)
        try:
            for repeat in range(args.repeats):
                t.one_repeat(repeat, workloads)
            if args.profile:
                profiles = [
                    p for p in map(t.profile, sorted(only & {"U1", "B1"}, reverse=True)) if p
                ]
        finally:
            if t.receiver is not None:
                t.receiver.close()
    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "wall_seconds": round(time.time() - started),
        "command": this.command,
        "revision": this.revision,
        "dirty": this.dirty,
        "machine": {
            **this.machine,
            "cpus": len(cpus),
            "h2load": run.tool_version(["h2load", "--version"]) if tools["h2load"] else "MISSING",
        },
        "settings": {
            "repeats": args.repeats,
            "duration_s": args.duration,
            "server_cpu": args.server_cpu,
            "client_cpu": args.client_cpu,
            "pinning": where,
            "sqlite_synchronous": t.synchronous,
            "baseline_rev": args.baseline_rev,
            "baseline_commit": commit,
        },
        "notes": t.notes,
        "targets": summarize(t.runs, only),
        "runs": t.runs,
        "profiles": profiles,
    }
    partial = only != set(TARGET_IDS)
    out = args.out or RESULTS / (
        f"targets-{'-'.join(sorted(only)).lower()}.json" if partial else "targets.json"
    )
    out.write_text(json.dumps(result, indent=1) + "\n")
    publish(records(this, result["targets"], t.runs))
    report.write_targets(result, out, readme=not partial)
    print(report.targets_md(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
