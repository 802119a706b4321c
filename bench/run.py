"""``make bench``: eventwire against bare Python servers, side by side.

    .venv/bin/python bench/run.py                 # full run: 3 repeats x 8 s, 10-minute soak
    .venv/bin/python bench/run.py --quick         # ~5 minutes: 3 repeats x 2 s, 30 s soak
    .venv/bin/python bench/run.py --soak-seconds 60 --repeats 5 --duration 5

What runs (every server pinned to CPU ``--server-cpu``, every load generator to
``--client-cpu``, with ``taskset``; a 1-core machine runs them unpinned and the
report says so):

* contenders: ``eventwire`` (the real ``eventwire serve``: gRPC + gateway +
  metrics, durable SQLite replies, its default ``synchronous``), bare
  ``grpc-aio`` (uvloop) and ``grpc-sync`` (4 threads) servers that only parse
  and reply, ``eventwire-sync`` (eventwire's real work behind grpcio's sync
  server, a prototype), and FastAPI, Starlette and raw-ASGI JSON servers that
  store through eventwire's own pipeline (see ``bench/_servers.py``);
* unary: ``h2load`` with a pre-encoded gRPC frame (successes counted
  server-side: eventwire's ``grpc_server_handled_total{grpc_code="OK"}``, the
  baselines' own counters; h2load's 2xx ignores ``grpc-status``), and ``wrk``
  for HTTP, each at 1 and 64 requests in flight;
* latency at a fixed 50 % of each gRPC contender's measured maximum (h2load
  ``--rps``, paced);
* batched durable ingest: 1,000-event ``TrackEvents`` batches (and JSON
  batches for the HTTP servers) with fresh event ids, ``bench/_load.py``;
* ``--workers 2`` against ``--workers 1`` (this machine may lack the cores to
  show it; the report says when the generator had to share);
* the eventwire server's RSS, threads and file descriptors over a soak;
* a py-spy profile of the server under unary and batched load.

Contenders alternate within each repeat (order rotated), and the report gives
medians with min-max. Results: ``bench/results/bench.json``, ``bench.md``,
``bench.svg``; ``bench/report.py`` turns the JSON into those and into
the README's Performance section.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import re
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from _cpu import cpu_seconds, descendants, per_request_us
from _harness import (
    Run,
    free_port,
    healthz,
    package_version,
    pinning,
    publish,
    record,
    wait_ready,
)
from http_gateway import WRK_SCRIPT

from eventwire.testing._process import log_line

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
PYTHON = sys.executable

GRPC_CONTENDERS = ("eventwire", "eventwire-sync", "grpc-aio", "grpc-sync")
HTTP_CONTENDERS = ("eventwire", "fastapi", "starlette", "raw-asgi")
BATCH_GRPC = ("eventwire", "eventwire-sync", "grpc-aio", "grpc-sync")
BATCH_HTTP = ("eventwire", "raw-asgi")
TRACK = "/analytics.AnalyticsService/TrackEvent"
HTTP_BODY = b'{"eventName":"page_view","userId":"user-42","properties":{"plan":"pro","src":"wrk"}}'


# -- tools ----------------------------------------------------------------------------


def ensure_tools(console: Any) -> dict[str, str]:
    """h2load and wrk from the OS packages; what is still missing is reported loudly."""
    wanted = {"h2load": "nghttp2-client", "wrk": "wrk", "taskset": "util-linux"}
    missing = [pkg for tool, pkg in wanted.items() if shutil.which(tool) is None]
    if missing and shutil.which("apt-get"):
        console.print(f"[yellow]installing {' '.join(missing)} with apt-get[/]")
        sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
            subprocess.run([*sudo, *argv], env=env, check=False, capture_output=True)
    found = {tool: shutil.which(tool) or "" for tool in wanted}
    for tool, path in found.items():
        if not path:
            console.print(
                f"[bold red]SKIPPED: {tool} is not installed (apt-get install {wanted[tool]}); "
                "the measurements that need it are left out of the report[/]"
            )
    return found


def tool_version(argv: list[str]) -> str:
    with contextlib.suppress(OSError):
        out = subprocess.run(argv, capture_output=True, text=True, check=False)
        return (out.stdout or out.stderr).strip().splitlines()[0].split(" Copyright")[0]
    return ""


# -- processes ------------------------------------------------------------------------


def pinned(cpus: str | None, argv: list[str]) -> list[str]:
    """``argv`` under ``taskset -c cpus``; ``None`` when main() found pinning impossible."""
    return ["taskset", "-c", cpus, *argv] if cpus else argv


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    grpc: str = ""
    http: str = ""
    metrics: list[str] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)
    db: Path | None = None

    def ok_count(self) -> float:
        """Successful TrackEvent/TrackEvents calls so far, counted by the server."""
        if self.name.startswith("eventwire") and self.name != "eventwire-sync":
            return sum(_handled_ok(address) for address in self.metrics)
        return float(_baseline_count(self.grpc)["ok"])

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.db is not None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.db}{suffix}").unlink(missing_ok=True)
        return self.proc.returncode


def _handled_ok(address: str) -> float:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    total = 0.0
    for line in text.splitlines():
        if (
            line.startswith("grpc_server_handled_total{")
            and 'grpc_code="OK"' in line
            and ('grpc_method="TrackEvent"' in line or 'grpc_method="TrackEvents"' in line)
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _baseline_count(target: str) -> dict[str, int]:
    import grpc

    with grpc.insecure_channel(target) as channel:
        get: Any = channel.unary_unary("/bench.Counter/Get")
        raw: bytes = get(b"", timeout=10)
    counts: dict[str, int] = orjson.loads(raw)
    return counts


def start_eventwire(
    tmp: Path,
    cpus: str | None,
    *extra: str,
    name: str = "eventwire",
    workers: int = 1,
    env: Mapping[str, str] | None = None,
) -> Server:
    """``eventwire serve`` pinned to ``cpus``; ``env`` replaces the environment (e.g. a
    ``PYTHONPATH`` that serves another revision's ``src``, or ``OTEL_*`` settings)."""
    db = tmp / f"{name}-{free_port()}.db"
    argv = [
        PYTHON, "-m", "eventwire", "serve",
        "--address", "127.0.0.1:0", "--http-address", "127.0.0.1:0",
        "--metrics-address", "127.0.0.1:0", "--log-format", "json",
        "--store", f"sqlite:///{db}", "--workers", str(workers), *extra,
    ]  # fmt: skip
    proc = subprocess.Popen(
        pinned(cpus, argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, env=None if env is None else dict(env),
    )  # fmt: skip
    server = Server(name, proc, db=db)
    serving = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            line = log_line(raw)
            server.logs.append(line)
            if line.get("msg") == "serving":
                server.grpc = str(line["grpc_address"])
                server.http = str(line.get("http_address", ""))
                server.metrics.append(str(line["metrics_address"]))
                if len(server.metrics) == workers:
                    serving.set()
            elif line.get("msg") == "supervising":
                server.pids = [int(p) for p in line["pids"]]

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + 60
    while not serving.wait(0.05):
        if proc.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"{name} did not start: {server.logs[-5:]}")
    if not server.pids:
        server.pids = [proc.pid]
    return server


def start_baseline(kind: str, tmp: Path, cpus: str | None, synchronous: str) -> Server:
    import grpc

    port = free_port()
    db = tmp / f"{kind}-{port}.db"
    argv = [
        PYTHON, str(BENCH / "_servers.py"), kind, "--port", str(port),
        "--db", str(db), "--synchronous", synchronous,
    ]  # fmt: skip
    proc = subprocess.Popen(pinned(cpus, argv), stdout=subprocess.DEVNULL)
    address = f"127.0.0.1:{port}"
    is_grpc = kind.startswith("grpc") or kind == "eventwire-sync"
    server = Server(kind, proc, grpc=address if is_grpc else "", http="" if is_grpc else address)
    server.db = db
    server.pids = [proc.pid]

    def grpc_ready() -> None:
        with grpc.insecure_channel(address) as channel:
            grpc.channel_ready_future(channel).result(timeout=1)

    try:
        wait_ready(proc, grpc_ready if is_grpc else healthz(address), kind)
    except RuntimeError:
        server.stop()
        raise
    return server


# -- load generators ------------------------------------------------------------------


def grpc_frame(tmp: Path) -> Path:
    from eventwire.api import analytics_pb2

    # No event_id: the server assigns one, so every request stores a new row.
    message = analytics_pb2.TrackEventRequest(
        event_name="page_view", user_id="user-42", properties={"plan": "pro", "src": "h2load"}
    ).SerializeToString()
    path = tmp / "track.grpc"
    path.write_bytes(b"\x00" + struct.pack(">I", len(message)) + message)
    return path


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


def h2load(
    server: Server,
    frame: Path,
    tmp: Path,
    *,
    clients: int,
    streams: int,
    seconds: float,
    cpus: str | None,
) -> dict[str, float]:
    """Unary TrackEvent with h2load; req/s and CPU µs per call (``cpu_us``, the whole
    server process tree, bench/_cpu.py) from the server's own success count."""
    url = f"http://{server.grpc}{TRACK}"
    common = [
        "h2load", "-c", str(clients), "-m", str(streams), "-d", str(frame),
        "-H", "content-type: application/grpc", "-H", "te: trailers",
    ]  # fmt: skip
    warm = max(200, clients * streams * 10)
    subprocess.run(pinned(cpus, [*common, "-n", str(warm), url]), capture_output=True, check=True)
    log = tmp / "h2load.log"
    extra = ["-D", f"{seconds * 1000:.0f}ms", "--log-file", str(log)]
    # Counts are read outside the CPU window: a /metrics scrape is not a call.
    before = server.ok_count()
    cpu_before = cpu_seconds(server.proc.pid)
    out = subprocess.run(
        pinned(cpus, [*common, *extra, url]),
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    cpu_after = cpu_seconds(server.proc.pid)
    after = server.ok_count()
    m = re.search(r"finished in ([\d.]+)s", out)
    done = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded", out)
    if m is None or done is None:
        raise RuntimeError(f"cannot parse h2load output:\n{out}")
    elapsed = float(m.group(1))
    latencies = sorted(
        int(line.split("\t")[2]) / 1000 for line in log.read_text().splitlines() if line
    )
    log.unlink()
    ok = after - before
    return {
        "rps": ok / elapsed,
        "ok": ok,
        "cpu_us": per_request_us(cpu_after - cpu_before, ok),
        "sent": float(done.group(3)),
        "errors": max(0.0, float(done.group(3)) - ok),
        "p50_ms": _percentile(latencies, 0.50),
        "p99_ms": _percentile(latencies, 0.99),
        "p999_ms": _percentile(latencies, 0.999),
    }


def h2load_paced(
    server: Server,
    frame: Path,
    tmp: Path,
    *,
    rate: float,
    seconds: float,
    cpus: str | None,
    lanes: int = 8,
) -> dict[str, float]:
    """Unary TrackEvent at ``rate`` req/s in total, for latency at a fixed load.

    One h2load process's clients start their --rps timers together and fire
    in lockstep, so ``-c 8 -m 8 --rps`` sends bursts of up to 64 requests and its
    p99 is the time to drain a burst (bare grpc.aio, storing nothing: p99 ~10 ms
    at half load). Here ``lanes`` single-stream h2load processes start at random
    phases, so requests arrive spread out, as from independent callers. A lane
    waits for its reply before its next request, so a reply slower than
    ``lanes / rate`` delays the next one: the p99 is exact below that bound.
    """
    url = f"http://{server.grpc}{TRACK}"
    common = [
        "h2load", "-c", "1", "-m", "1", "-d", str(frame),
        "-H", "content-type: application/grpc", "-H", "te: trailers",
    ]  # fmt: skip
    subprocess.run(
        pinned(cpus, ["h2load", *common[1:], "-n", "500", url]), capture_output=True, check=True
    )
    before = server.ok_count()
    began = time.perf_counter()
    procs: list[tuple[subprocess.Popen[bytes], Path]] = []
    for lane in range(lanes):
        log = tmp / f"h2load-lane-{lane}.log"
        argv = [*common, "--rps", f"{rate / lanes:.3f}", "-D", f"{seconds * 1000:.0f}ms"]
        argv += ["--log-file", str(log), url]
        procs.append((subprocess.Popen(pinned(cpus, argv), stdout=subprocess.DEVNULL), log))
        time.sleep(random.uniform(0, lanes / rate))  # noqa: S311 - a phase, not a secret
    latencies: list[float] = []
    for proc, log in procs:
        if proc.wait() != 0:
            raise RuntimeError(f"h2load lane exited with {proc.returncode}")
        lines = log.read_text().splitlines()
        latencies += [int(line.split("\t")[2]) / 1000 for line in lines if line]
        log.unlink()
    elapsed = time.perf_counter() - began
    ok = server.ok_count() - before
    latencies.sort()
    return {
        "rps": ok / elapsed,
        "ok": ok,
        "sent": float(len(latencies)),
        "errors": max(0.0, len(latencies) - ok),
        "p50_ms": _percentile(latencies, 0.50),
        "p99_ms": _percentile(latencies, 0.99),
        "p999_ms": _percentile(latencies, 0.999),
    }


def wrk(
    server: Server, script: Path, *, connections: int, seconds: float, cpus: str | None
) -> dict[str, float]:
    url = f"http://{server.http}/v1/events"
    warm = ["wrk", "-t1", f"-c{connections}", "-d1s", "-s", str(script), url]
    subprocess.run(pinned(cpus, warm), capture_output=True, check=True)
    argv = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "-s",
        str(script),
        url,
    ]
    out = subprocess.run(pinned(cpus, argv), capture_output=True, text=True, check=True).stdout
    m = re.search(r"BENCH (\d+) (\d+) (\d+) (\d+) (\d+)", out)
    if m is None:
        raise RuntimeError(f"cannot parse wrk output:\n{out}")
    requests, errors, p50, p99, duration_us = (int(g) for g in m.groups())
    return {
        "rps": (requests - errors) / (duration_us / 1e6),
        "ok": float(requests - errors),
        "errors": float(errors),
        "p50_ms": p50 / 1000,
        "p99_ms": p99 / 1000,
    }


def batch_load(
    protocol: str,
    target: str,
    *,
    seconds: float,
    cpus: str | None,
    in_flight: int = 8,
    server_pid: int | None = None,
) -> dict[str, float]:
    """1k-event batches from bench/_load.py. With ``server_pid``, also ``cpu_us`` per
    event: the server tree's CPU over the generator's whole run (warm-up included)
    divided by every event the server acknowledged as stored in that run."""
    cpu_before = cpu_seconds(server_pid) if server_pid else 0.0
    argv = [
        PYTHON, str(BENCH / "_load.py"), protocol, target, "--seconds", str(seconds),
        "--warmup", str(min(2.0, max(0.5, seconds / 4))), "--in-flight", str(in_flight),
    ]  # fmt: skip
    out = subprocess.run(pinned(cpus, argv), capture_output=True, text=True, check=True).stdout
    result: dict[str, float] = orjson.loads(out.strip().splitlines()[-1])
    if server_pid:
        spent = cpu_seconds(server_pid) - cpu_before
        result["cpu_us"] = per_request_us(spent, result["accepted_total"])
    return result


# -- process sampling -----------------------------------------------------------------


def sample(pid: int) -> dict[str, float]:
    """RSS (MiB), threads and open fds of ``pid`` and its children together."""
    rss = threads = fds = 0
    for p in descendants(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1])
                elif line.startswith("Threads:"):
                    threads += int(line.split()[1])
            fds += len(os.listdir(f"/proc/{p}/fd"))
    return {"rss_mib": rss / 1024, "threads": float(threads), "fds": float(fds)}


# -- the run --------------------------------------------------------------------------


@dataclass
class Settings:
    repeats: int
    duration: float
    soak_seconds: float
    server_cpu: str | None
    client_cpu: str | None
    synchronous: str
    profile_seconds: float
    quick: bool
    extra_contenders: list[str]


class Bench:
    def __init__(self, settings: Settings, tmp: Path, tools: dict[str, str], progress: Any):
        self.s = settings
        self.tmp = tmp
        self.tools = tools
        self.progress = progress
        self.runs: list[dict[str, Any]] = []
        self.frame = grpc_frame(tmp)
        self.script = tmp / "post.lua"
        self.script.write_text(WRK_SCRIPT % HTTP_BODY.decode())
        self.notes: list[str] = []

    def eventwire(self) -> Server:
        return start_eventwire(
            self.tmp, self.s.server_cpu, "--sqlite-synchronous", self.s.synchronous
        )

    def record(self, contender: str, workload: str, repeat: int, result: dict[str, float]) -> None:
        self.runs.append({"contender": contender, "workload": workload, "repeat": repeat, **result})

    @contextlib.contextmanager
    def server(self, name: str) -> Iterator[Server]:
        cpu = self.s.server_cpu
        if name == "eventwire":
            srv = start_eventwire(self.tmp, cpu, "--sqlite-synchronous", self.s.synchronous)
        elif name.startswith("eventwire/"):
            level = name.split("/", 1)[1]
            srv = start_eventwire(self.tmp, cpu, "--sqlite-synchronous", level, name=name)
        else:
            srv = start_baseline(name, self.tmp, cpu, self.s.synchronous)
        try:
            yield srv
        finally:
            srv.stop()

    def contenders(self) -> list[str]:
        names = list(dict.fromkeys((*GRPC_CONTENDERS, *HTTP_CONTENDERS)))
        return names + self.s.extra_contenders

    def one_repeat(self, repeat: int, task: Any) -> None:
        names = self.contenders()
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            self.progress.update(task, description=f"repeat {repeat + 1}: {name}")
            with self.server(name) as srv:
                self.measure(name, srv, repeat)
            self.progress.advance(task)

    def measure(self, name: str, srv: Server, repeat: int) -> None:
        d, cpu = self.s.duration, self.s.client_cpu
        is_eventwire = name.startswith("eventwire") and name != "eventwire-sync"
        if srv.grpc and self.tools["h2load"] and (name in GRPC_CONTENDERS or is_eventwire):
            for clients, streams, label in ((1, 1, "unary-grpc-1"), (8, 8, "unary-grpc-64")):
                result = h2load(
                    srv, self.frame, self.tmp, clients=clients, streams=streams, seconds=d, cpus=cpu
                )
                self.record(name, label, repeat, result)
        if srv.http and self.tools["wrk"] and (name in HTTP_CONTENDERS or is_eventwire):
            for connections in (1, 64):
                result = wrk(srv, self.script, connections=connections, seconds=d, cpus=cpu)
                self.record(name, f"unary-http-{connections}", repeat, result)
        if name in BATCH_GRPC or is_eventwire:
            self.record(
                name, "batch-grpc", repeat, batch_load("grpc", srv.grpc, seconds=d, cpus=cpu)
            )
        if (name in BATCH_HTTP or is_eventwire) and srv.http:
            self.record(
                name, "batch-http", repeat, batch_load("http", srv.http, seconds=d, cpus=cpu)
            )

    def half_load(self, task: Any) -> None:
        """p50/p99 at 50 % of each gRPC contender's median maximum (64 in flight)."""
        if not self.tools["h2load"]:
            return
        for name in GRPC_CONTENDERS:
            rates = [
                r["rps"] for r in self.runs
                if r["contender"] == name and r["workload"] == "unary-grpc-64"
            ]  # fmt: skip
            if not rates:
                continue
            target = 0.5 * statistics.median(rates)
            self.progress.update(task, description=f"50% load: {name} at {target:.0f} req/s")
            with self.server(name) as srv:
                for repeat in range(self.s.repeats):
                    result = h2load_paced(
                        srv, self.frame, self.tmp, rate=target,
                        seconds=self.s.duration, cpus=self.s.client_cpu,
                    )  # fmt: skip
                    result["target_rps"] = target
                    self.record(name, "unary-grpc-50pct", repeat, result)
            self.progress.advance(task)

    def workers(self, task: Any) -> None:
        """--workers 2 against 1: servers may use every CPU, the generator shares one."""
        cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
        all_cpus = ",".join(str(c) for c in sorted(cpus)) or None
        if len(cpus) < 3:
            self.notes.append(
                f"--workers: this machine has {len(cpus)} CPUs, so the load generator shares a "
                "core with the workers; --workers 2 vs 1 shows the trend, not the 2-free-cores case"
            )
        for repeat in range(self.s.repeats):
            for count in (1, 2) if repeat % 2 == 0 else (2, 1):
                name = f"eventwire-w{count}"
                self.progress.update(task, description=f"workers: {name} (repeat {repeat + 1})")
                srv = start_eventwire(
                    self.tmp, all_cpus, "--sqlite-synchronous", self.s.synchronous,
                    name=name, workers=count,
                )  # fmt: skip
                try:
                    if self.tools["h2load"]:
                        result = h2load(
                            srv, self.frame, self.tmp, clients=8, streams=8,
                            seconds=self.s.duration, cpus=self.s.client_cpu,
                        )  # fmt: skip
                        self.record(name, "unary-grpc-64", repeat, result)
                    result = batch_load(
                        "grpc", srv.grpc, seconds=self.s.duration, cpus=self.s.client_cpu
                    )
                    self.record(name, "batch-grpc", repeat, result)
                finally:
                    code = srv.stop()
                    if code != 0:
                        self.notes.append(f"{name} exited with {code} after SIGTERM")
                self.progress.advance(task)

    def soak(self, task: Any) -> dict[str, Any]:
        """Unary load at half speed plus a batch stream; sample the server every few seconds."""
        seconds = self.s.soak_seconds
        srv = start_eventwire(
            self.tmp, self.s.server_cpu, "--sqlite-synchronous", self.s.synchronous
        )
        samples: list[dict[str, float]] = []
        loads: list[subprocess.Popen[bytes]] = []
        try:
            rates = [
                r["rps"] for r in self.runs
                if r["contender"] == "eventwire" and r["workload"] == "unary-grpc-64"
            ]  # fmt: skip
            rate = 0.5 * statistics.median(rates) if rates else 1000.0
            if self.tools["h2load"]:
                argv = [
                    "h2load", "-c", "8", "-m", "8", "-d", str(self.frame),
                    "-H", "content-type: application/grpc", "-H", "te: trailers",
                    "--rps", f"{rate / 8:.2f}", "-D", str(int(seconds) + 5),
                    f"http://{srv.grpc}{TRACK}",
                ]  # fmt: skip
                loads.append(
                    subprocess.Popen(pinned(self.s.client_cpu, argv), stdout=subprocess.DEVNULL)
                )
            argv = [
                PYTHON, str(BENCH / "_load.py"), "grpc", srv.grpc, "--seconds", str(seconds + 5),
                "--in-flight", "1",
            ]  # fmt: skip
            loads.append(
                subprocess.Popen(pinned(self.s.client_cpu, argv), stdout=subprocess.DEVNULL)
            )
            start = time.monotonic()
            interval = max(1.0, seconds / 60)
            while (elapsed := time.monotonic() - start) < seconds:
                samples.append({"t": round(elapsed, 1), **sample(srv.proc.pid)})
                self.progress.update(task, completed=min(seconds, elapsed))
                time.sleep(interval)
            samples.append({"t": round(time.monotonic() - start, 1), **sample(srv.proc.pid)})
            events = srv.ok_count()
        finally:
            for load in loads:
                load.terminate()
                load.wait()
            code = srv.stop()
        self.progress.update(task, completed=seconds)
        # The first tenth warms caches, the WAL and the allocator; "flat" is judged after it.
        steady = [s for s in samples if s["t"] >= seconds / 10] or samples
        rss = [s["rss_mib"] for s in steady]
        return {
            "seconds": seconds,
            "unary_rps": rate,
            "calls_ok": events,
            "exit_code": code,
            "samples": samples,
            "rss_start_mib": rss[0],
            "rss_end_mib": rss[-1],
            "rss_max_drift_pct": 100 * (max(rss) - rss[0]) / rss[0],
            "rss_end_drift_pct": 100 * (rss[-1] - rss[0]) / rss[0],
            "fds_start": steady[0]["fds"],
            "fds_end": steady[-1]["fds"],
            "threads_start": steady[0]["threads"],
            "threads_end": steady[-1]["threads"],
        }

    def profile(self, task: Any) -> list[str]:
        """py-spy of the eventwire server under batched and under unary load."""
        spy = shutil.which("py-spy") or str(Path(PYTHON).parent / "py-spy")
        if not Path(spy).exists():
            self.notes.append("profile SKIPPED: py-spy not found")
            return []
        written: list[str] = []
        for workload in ("batch", "unary"):
            self.progress.update(task, description=f"profile: {workload}")
            srv = start_eventwire(
                self.tmp, self.s.server_cpu, "--sqlite-synchronous", self.s.synchronous
            )
            try:
                raw = self.tmp / f"profile-{workload}.txt"
                speedscope = RESULTS / f"profile-{workload}.speedscope.json"
                seconds = self.s.profile_seconds
                if workload == "batch":
                    load = [PYTHON, str(BENCH / "_load.py"), "grpc", srv.grpc,
                            "--seconds", str(seconds + 3), "--warmup", "0.5"]  # fmt: skip
                else:
                    load = [
                        "h2load", "-c", "8", "-m", "8", "-d", str(self.frame),
                        "-H", "content-type: application/grpc", "-H", "te: trailers",
                        "-D", str(int(seconds) + 3), f"http://{srv.grpc}{TRACK}",
                    ]  # fmt: skip
                gen = subprocess.Popen(pinned(self.s.client_cpu, load), stdout=subprocess.DEVNULL)
                time.sleep(1.0)
                ok = True
                for fmt, out in (("raw", raw), ("speedscope", speedscope)):
                    done = subprocess.run(
                        [spy, "record", "--pid", str(srv.proc.pid), "--duration",
                         str(int(seconds / 2)), "--rate", "250", "--format", fmt,
                         "--threads", "--nonblocking", "-o", str(out)],
                        capture_output=True, text=True, check=False,
                    )  # fmt: skip
                    ok = ok and done.returncode == 0
                    if done.returncode != 0:
                        self.notes.append(f"py-spy failed: {done.stderr.strip()[-300:]}")
                gen.wait()
                if ok:
                    summary = RESULTS / f"profile-{workload}.txt"
                    summary.write_text(summarize_profile(raw, workload))
                    written += [str(summary.relative_to(BENCH.parent)),
                                str(speedscope.relative_to(BENCH.parent))]  # fmt: skip
            finally:
                srv.stop()
            self.progress.advance(task)
        return written


def summarize_profile(raw: Path, workload: str) -> str:
    """Top frames by self and inclusive time from py-spy's collapsed stacks."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    threads: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = stack.split(";")
        # With --threads the first frame is "thread (tid): name": eventwire names its
        # threads, and "Thread-1 (_poll_wrapper)" is grpc.aio's poller.
        named = re.match(r"thread \(\d+\): (.+)", frames[0])
        if named:
            kind = {"MainThread": "MainThread (event loop)"}.get(named[1], named[1])
        elif any("_WorkItem.run" in f for f in frames):
            kind = "sqlite writer thread"
        else:
            kind = "event loop thread" if any("Runner.run" in f for f in frames) else "other"
        threads[kind] = threads.get(kind, 0) + n
        leaf = re.sub(r":\d+\)$", ")", frames[-1])
        own[leaf] = own.get(leaf, 0) + n
        for frame in {re.sub(r":\d+\)$", ")", f) for f in frames[1:]}:
            inclusive[frame] = inclusive.get(frame, 0) + n
    out = [
        f"py-spy profile of eventwire serve under {workload} load ({total} samples, active "
        "threads only; the server had one core, so the threads share it)",
        "",
    ]
    out.append("by thread:")
    out += [f"  {v / total:6.1%}  {k}" for k, v in sorted(threads.items(), key=lambda kv: -kv[1])]
    out.append("\nself time (top 25):")
    top = sorted(own.items(), key=lambda kv: -kv[1])[:25]
    out += [f"  {v / total:6.1%}  {k}" for k, v in top]
    out.append("\ninclusive time (top 30):")
    top = sorted(inclusive.items(), key=lambda kv: -kv[1])[:30]
    out += [f"  {v / total:6.1%}  {k}" for k, v in top]
    return "\n".join(out) + "\n"


def summarize(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """workload -> contender -> metric -> {median, min, max, runs}."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for run in runs:
        cell = out.setdefault(run["workload"], {}).setdefault(run["contender"], {})
        for key, value in run.items():
            if key in ("contender", "workload", "repeat") or not isinstance(value, int | float):
                continue
            cell.setdefault(key, []).append(float(value))
    for contenders in out.values():
        for metrics in contenders.values():
            for key, values in list(metrics.items()):
                metrics[key] = {
                    "median": statistics.median(values),
                    "min": min(values),
                    "max": max(values),
                    "runs": values,
                }
    return out


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0915 - one linear script
    parser = argparse.ArgumentParser(
        prog="bench/run.py", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="~5 minutes: 2 s runs, 30 s soak")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=float, help="seconds per measurement (8; quick: 2)")
    parser.add_argument("--soak-seconds", type=float, help="soak length (600; quick: 30)")
    parser.add_argument("--profile-seconds", type=float, help="profiling window (16; quick: 6)")
    parser.add_argument("--server-cpu", default="0")
    parser.add_argument("--client-cpu", default="1")
    parser.add_argument(
        "--synchronous",
        default="",
        help="SQLite synchronous for every server (default: eventwire's)",
    )
    parser.add_argument(
        "--compare-synchronous",
        action="store_true",
        help="also run eventwire with synchronous=normal and full as extra contenders",
    )
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=("half-load", "workers", "soak", "profile")
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "bench.json")
    args = parser.parse_args(argv)

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from eventwire.config import ServerConfig

    console = Console(stderr=True)
    tools = ensure_tools(console)
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    pin = pinning(args.server_cpu, args.client_cpu)
    server_cpu, client_cpu = pin.server_cpu, pin.load_cpu
    notes: list[str] = []
    if not pin.pinned:
        notes.append("NOT pinned: fewer than 2 CPUs or no taskset; server and load share cores")
    this = Run.now(pin, ["bench/run.py", *(argv if argv is not None else sys.argv[1:])])
    synchronous = args.synchronous or ServerConfig().sqlite_synchronous
    settings = Settings(
        repeats=args.repeats,
        duration=args.duration or (2.0 if args.quick else 8.0),
        soak_seconds=args.soak_seconds or (30.0 if args.quick else 600.0),
        server_cpu=server_cpu,
        client_cpu=client_cpu,
        synchronous=synchronous,
        profile_seconds=args.profile_seconds or (6.0 if args.quick else 16.0),
        quick=args.quick,
        extra_contenders=(
            ["eventwire/normal", "eventwire/full"] if args.compare_synchronous else []
        ),
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    started = time.time()
    load_at_start = os.getloadavg() if hasattr(os, "getloadavg") else None
    soak: dict[str, Any] = {}
    profiles: list[str] = []
    with (
        tempfile.TemporaryDirectory(prefix="eventwire-bench-") as tmp_name,
        Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:.0f}/{task.total:.0f}"),
            TimeElapsedColumn(),
            console=console,
        ) as progress,
    ):
        bench = Bench(settings, Path(tmp_name), tools, progress)
        bench.notes += notes
        steps = len(bench.contenders()) * settings.repeats
        task = progress.add_task("contenders", total=steps)
        for repeat in range(settings.repeats):
            bench.one_repeat(repeat, task)
        if "half-load" not in args.skip:
            task = progress.add_task("50% load", total=len(GRPC_CONTENDERS))
            bench.half_load(task)
        if "workers" not in args.skip:
            task = progress.add_task("workers", total=2 * settings.repeats)
            bench.workers(task)
        if "profile" not in args.skip:
            task = progress.add_task("profile", total=2)
            profiles = bench.profile(task)
        if "soak" not in args.skip:
            task = progress.add_task(
                f"soak {settings.soak_seconds:.0f}s", total=settings.soak_seconds
            )
            soak = bench.soak(task)

    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "wall_seconds": round(time.time() - started),
        "command": this.command,
        "revision": this.revision,
        "dirty": this.dirty,
        "pinning": this.pinning,
        "machine": {
            **this.machine,
            "cpus": len(cpus) or os.cpu_count(),
            "platform": platform.platform(),
            "load_average_at_start": load_at_start,
        },
        "tools": {
            "h2load": tool_version(["h2load", "--version"]) if tools["h2load"] else "MISSING",
            "wrk": tool_version(["wrk", "--version"]) if tools["wrk"] else "MISSING",
            "grpcio": package_version("grpcio"),
        },
        "settings": {
            "repeats": settings.repeats,
            "duration_s": settings.duration,
            "server_cpu": settings.server_cpu,
            "client_cpu": settings.client_cpu,
            "sqlite_synchronous": settings.synchronous,
            "quick": settings.quick,
        },
        "notes": bench.notes,
        "summary": summarize(bench.runs),
        "runs": bench.runs,
        "soak": soak,
        "profiles": profiles,
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    console.print(f"wrote {args.out}")
    publish(records(this, bench.runs, soak))
    sys.path.insert(0, str(BENCH))
    import report

    report.write_all(result, args.out.parent, console)
    return 0


def records(this: Run, runs: list[dict[str, Any]], soak: dict[str, Any]) -> list[dict[str, Any]]:
    """One history record per measured run (workload/contender, each repeat), and the soak's."""
    out = [
        record(
            this,
            "run",
            f"{r['workload']}/{r['contender']}",
            {k: v for k, v in r.items() if k not in ("contender", "workload", "repeat")},
            repeat=r["repeat"],
        )
        for r in runs
    ]
    if soak:
        out.append(
            record(this, "run", "soak/eventwire", {k: v for k, v in soak.items() if k != "samples"})
        )
    return out


if __name__ == "__main__":
    sys.exit(main())
