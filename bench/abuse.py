"""Abuse figures for the README's Security section: gRPC floods, then HTTP attacks.

gRPC: starts ``eventwire serve`` (SQLite, synchronous=normal), measures a
well-behaved client's TrackEvent p99 alone, then again while a raw HTTP/2
client (``eventwire.testing._abuse``) floods the server with PINGs, opens and
resets streams as fast as the socket takes them (CVE-2023-44487's pattern),
and holds hundreds of idle connections. Records the server's RSS before, at
its peak and after, and how each attack ended.

Floods (``--only floods``): a TrackEvent client's and two health probers' p99
(1 s deadlines; one on the gRPC port, one on ``--health-port``) while 20
connections pipeline health checks and while 10 do Rapid Reset.

HTTP (``bench/_http_abuse.py``): gRPC health latency while the gateway takes
64 MiB heads, slowloris connections and a flood of 10,000-event batches, side
by side for the HTTP listeners on their own thread and loop (the default) and
on the gRPC loop (``--no-http-thread``); ``--before DIR`` adds a server run
from another source tree (``git archive BASE src | tar -x -C DIR``) as it
was.

Every part pins the server to CPU 0 and this script, the attackers and the
probes to CPU 1 (``bench/_harness.py``; nothing is pinned on a smaller
machine, and the records say so), and samples the server's CPU over each
scenario. Each scenario is one record in ``bench/results/history.jsonl``;
``abuse.json`` keeps every part's latest figures (a run of some parts leaves
the others' in place) for the tables in ``abuse.md``.

    .venv/bin/python bench/abuse.py            # history.jsonl, abuse.{json,md}
    .venv/bin/python bench/abuse.py --only http --before /tmp/base
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import socket
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# bench/ is on sys.path: this script's folder
from _harness import RESULTS, CpuMeter, Run, eventwire_server, pinning, publish, record
from _http_abuse import PHASES, http_abuse

from eventwire.testing._abuse import abuse
from eventwire.testing._floods import pipelined_flood, rapid_reset
from eventwire.testing._probes import HealthProber, LegitClient

PIN = pinning()
SQLITE = ("--sqlite-synchronous", "normal")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ping-connections", type=int, default=50)
    parser.add_argument("--pings", type=int, default=1000)
    parser.add_argument("--reset-connections", type=int, default=10)
    parser.add_argument("--resets", type=int, default=200_000)
    parser.add_argument("--flood-connections", type=int, default=2000)
    parser.add_argument("--hold", type=float, default=3.0)
    parser.add_argument("--http-seconds", type=float, default=4.0, help="per HTTP attack")
    parser.add_argument("--flood-seconds", type=float, default=10.0)
    parser.add_argument("--streams", type=int, default=0, help="--max-concurrent-streams (floods)")
    parser.add_argument("--only", choices=("all", "grpc", "floods", "http"), default="all")
    parser.add_argument("--before", help="also run the server from this source tree's src/")
    args = parser.parse_args()
    PIN.pin_self_to_load()  # the probes, and (inherited) every attacker process
    this = Run.now(PIN)
    # A partial run (--only) keeps the other parts of the last results.
    previous = RESULTS / "abuse.json"
    result = upgrade(json.loads(previous.read_text()) if previous.exists() else {})
    records: list[dict[str, Any]] = []
    alive = True
    if args.only in ("all", "grpc"):
        floods, alive = grpc_floods(args)
        result.update(floods)
        result["runs"]["grpc"] = this.header()
        records += grpc_records(this, floods)
    if args.only in ("all", "floods"):
        result["floods"] = request_floods(args)
        result["runs"]["floods"] = this.header()
        records += floods_records(this, result["floods"], args.streams)
    if args.only in ("all", "http"):
        result["http"] = http_attacks(args)
        result["runs"]["http"] = this.header()
        records += http_records(this, result["http"])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "abuse.json").write_text(json.dumps(result, indent=2) + "\n")
    text = (
        (table(result) if "ping_flood" in result else "")
        + floods_table(result)
        + http_table(result)
    )
    (RESULTS / "abuse.md").write_text(text)
    print(text)
    publish(records)
    return 0 if alive else 1


def upgrade(result: dict[str, Any]) -> dict[str, Any]:
    """Results written before every part carried its own run header: each part's
    command and the one machine line move under ``runs``."""
    runs: dict[str, dict[str, Any]] = result.setdefault("runs", {})
    machine = result.pop("machine", None)
    for part, key in (("grpc", "command"), ("floods", "floods_command"), ("http", "http_command")):
        command = result.pop(key, None)
        if command is not None and part not in runs:
            runs[part] = {"machine": machine or "", "command": command}
    return result


def server(tmp: str, *flags: str, env: Mapping[str, str] | None = None) -> Any:
    """``eventwire serve`` on SQLite (synchronous=normal) in ``tmp``, pinned, started."""
    return eventwire_server(
        "--store",
        f"sqlite:///{tmp}/abuse.db",
        *SQLITE,
        *flags,
        pin=PIN,
        env={**os.environ, **(env or {})},
    ).start()


def http_attacks(args: argparse.Namespace) -> dict[str, Any]:
    """:func:`http_abuse` on each way of running the HTTP side."""
    modes: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
        "own thread": (("--http-thread",), {}),
        "gRPC loop": (("--no-http-thread",), {}),
    }
    if args.before:
        env = {"PYTHONPATH": str(Path(args.before) / "src")}
        modes["before"] = ((), env)
    out: dict[str, Any] = {}
    for mode, (flags, env) in modes.items():
        with tempfile.TemporaryDirectory() as tmp:
            proc = server(tmp, *flags, env=env)
            try:
                out[mode] = http_abuse(proc.address, proc.http_address, proc.pid, args.http_seconds)
            finally:
                proc.terminate()
                proc.wait()
    return out


def request_floods(args: argparse.Namespace) -> dict[str, Any]:
    """A TrackEvent client and a health prober (1 s deadlines) while 20 connections
    pipeline health checks, then while 10 connections do Rapid Reset. The server
    has its CPU to itself; attackers and probes share the other."""
    import multiprocessing

    out: dict[str, Any] = {}
    streams = ("--max-concurrent-streams", str(args.streams)) if args.streams else ()
    with (
        tempfile.TemporaryDirectory() as tmp,
        multiprocessing.get_context("spawn").Pool(10) as pool,
    ):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            health_port = sock.getsockname()[1]
        proc = server(tmp, *streams, "--health-port", str(health_port))
        pool.apply(abs, (0,))
        method = "/analytics.AnalyticsService/TrackEvent"
        try:
            for name in ("idle", "pipelined unary, 20 connections", "Rapid Reset, 10 connections"):
                figures: dict[str, int] = {}
                with (
                    LegitClient(proc.address, timeout=1.0) as client,
                    HealthProber(proc.address, timeout=1.0) as prober,
                    HealthProber(f"127.0.0.1:{health_port}", timeout=1.0) as probe_port,
                    CpuMeter(proc.pid) as cpu,
                ):
                    if name == "idle":
                        time.sleep(args.flood_seconds / 2)
                        attack = ""
                    elif name.startswith("pipelined"):
                        flood = pool.apply(pipelined_flood, (proc.address, args.flood_seconds))
                        attack = f"{flood.answered / flood.seconds:,.0f} calls/s answered"
                        figures = {"attack_requests": flood.answered}
                    else:
                        runs = [
                            pool.apply_async(
                                rapid_reset, (proc.address, 50_000), {"method": method}
                            )
                            for _ in range(10)
                        ]
                        ends = [r.get() for r in runs]
                        sent = sum(n for n, _ in ends)
                        closed = sum(end != "open" for _, end in ends)
                        attack = (
                            f"{sent:,} streams reset, {closed}/10 connections closed by the server"
                        )
                        figures = {"attack_requests": sent, "connections_closed": closed}
                requests = len(client.latencies) + len(prober.latencies)
                requests += figures.get("attack_requests", 0)
                out[name] = {
                    "trackevent_p99_ms": round(client.p99() * 1000, 1),
                    "trackevent_calls": len(client.latencies),
                    "trackevent_errors": client.errors,
                    "health_p99_ms": round(prober.p99() * 1000, 1),
                    "health_calls": len(prober.latencies),
                    "health_errors": prober.errors,
                    "probe_port_p99_ms": round(probe_port.p99() * 1000, 1),
                    "probe_port_calls": len(probe_port.latencies),
                    "probe_port_errors": probe_port.errors,
                    "attack": attack,
                    **figures,
                    "server_cpu_s": round(cpu.seconds, 2),
                    "cpu_us_per_request": round(cpu.seconds * 1e6 / max(requests, 1), 1),
                }
        finally:
            proc.terminate()
            proc.wait()
    return out


# -- records --------------------------------------------------------------------------


def _finite(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """A p99 over no calls is infinite: not a measurement, so not a metric."""
    return {k: v for k, v in metrics.items() if not isinstance(v, float) or math.isfinite(v)}


def _count(items: object) -> int:
    """An error list's length (or a count written as such)."""
    return len(items) if isinstance(items, list) else int(str(items))


def grpc_records(this: Run, r: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The protocol attacks, one record each, and what the server and the
    well-behaved client went through meanwhile."""
    outcomes: dict[str, list[str]] = r["outcomes"]
    ping, reset, flood = r["ping_flood"], r["rapid_reset"], r["connection_flood"]
    return [
        record(
            this,
            "abuse",
            "grpc ping flood",
            {
                **ping,
                "connections": len(outcomes["ping_flood"]),
                "connections_goaway": sum(o != "no goaway" for o in outcomes["ping_flood"]),
            },
            outcome=summary(outcomes["ping_flood"]),
        ),
        record(
            this,
            "abuse",
            "grpc rapid reset",
            {
                **reset,
                "connections": len(outcomes["rapid_reset"]),
                "connections_closed": sum(
                    not o.startswith("open") for o in outcomes["rapid_reset"]
                ),
            },
            outcome=summary(outcomes["rapid_reset"]),
        ),
        record(this, "abuse", "grpc connection flood", flood),
        record(
            this,
            "abuse",
            "grpc server under the attacks",
            _finite(
                {
                    "rss_before_kib": r["rss_before"],
                    "rss_peak_kib": r["rss_peak"],
                    "rss_after_kib": r["rss_after"],
                    "legit_p99_before_ms": round(r["p99_before"] * 1000, 1),
                    "legit_p99_during_ms": round(r["p99_during"] * 1000, 1),
                    "legit_calls_during": r["legit_calls_during"],
                    "legit_errors": _count(r["legit_errors"]),
                    "server_cpu_s": r["server_cpu_s"],
                }
            ),
            server_alive=r["server_alive"],
        ),
    ]


def floods_records(
    this: Run, floods: Mapping[str, Mapping[str, Any]], streams: int
) -> list[dict[str, Any]]:
    """One record per flood: both probes' p99, calls and errors, and the server's CPU."""
    out = []
    for name, m in floods.items():
        metrics = {
            k: _count(v) if k.endswith("_errors") else v for k, v in m.items() if k != "attack"
        }
        context: dict[str, object] = {"attack": m["attack"]} if m["attack"] else {}
        if streams:
            context["max_concurrent_streams"] = streams
        out.append(record(this, "abuse", f"floods {name}", _finite(metrics), **context))
    return out


def http_records(
    this: Run, http: Mapping[str, Mapping[str, Mapping[str, Any]]]
) -> list[dict[str, Any]]:
    """One record per HTTP side and phase: gRPC health latency and the server's CPU."""
    return [
        record(this, "abuse", f"http {mode} {phase}", _finite(m), http_side=mode, phase=phase)
        for mode, phases in http.items()
        for phase, m in phases.items()
    ]


# -- tables ---------------------------------------------------------------------------


def machine_line(r: Mapping[str, Any], part: str) -> str:
    """The machine and command a part of the tables was measured with."""
    run: Mapping[str, Any] = r.get("runs", {}).get(part, {})
    machine = run.get("machine", "")
    if isinstance(machine, Mapping):
        machine = (
            f"{machine['cpu_model']}, {machine['nproc']} cores, Python {machine['python']}, "
            f"grpcio {machine['grpcio']}"
        )
    command = str(run.get("command", "")).removeprefix("python ")
    return f"{machine}. `python {command}`"


def floods_table(r: dict[str, Any]) -> str:
    floods: dict[str, dict[str, Any]] = r.get("floods", {})
    if not floods:
        return ""
    lines = [
        "",
        "A well-behaved client and health probers (1 s deadlines; one on the gRPC port, "
        "one on --health-port) during request floods:",
        "",
        "| flood | TrackEvent p99 | calls | errors | Health/Check p99 | calls | errors "
        "| on --health-port: p99 | calls | errors | attack |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in floods.items():
        probe_port = (
            f"{m['probe_port_p99_ms']} ms | {m['probe_port_calls']:,} | "
            f"{len(m['probe_port_errors'])}"
            if "probe_port_calls" in m
            else "| |"
        )
        lines.append(
            f"| {name} | {m['trackevent_p99_ms']} ms | {m['trackevent_calls']:,} | "
            f"{len(m['trackevent_errors'])} | {m['health_p99_ms']} ms | {m['health_calls']:,} | "
            f"{len(m['health_errors'])} | {probe_port} | {m['attack']} |"
        )
    lines += ["", machine_line(r, "floods"), ""]
    return "\n".join(lines)


def http_table(r: dict[str, Any]) -> str:
    http: dict[str, dict[str, dict[str, Any]]] = r.get("http", {})
    if not http:
        return ""
    lines = [
        "",
        "gRPC health while the HTTP gateway is attacked (Check in a loop on an open channel):",
        "",
        "| HTTP side | phase | health p50 | p99 | max | health calls | server CPU | attack |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for mode, phases in http.items():
        for phase in PHASES:
            m = phases[phase]
            detail = ", ".join(
                f"{k} {v:,}" for k, v in m.items() if k in ("bytes_sent", "connections", "events")
            )
            if "events" in m and m["seconds"]:
                detail += f" ({m['events'] / m['seconds']:,.0f} events/s)"
            lines.append(
                f"| {mode} | {phase} | {m['p50_ms']} ms | {m['p99_ms']} ms | {m['max_ms']} ms | "
                f"{m['health_calls']:,} | {m['server_cpu_s']} s / {m['seconds']} s | {detail} |"
            )
    lines += ["", machine_line(r, "http"), ""]
    return "\n".join(lines)


def grpc_floods(args: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    with tempfile.TemporaryDirectory() as tmp:
        proc = server(tmp)
        try:
            with CpuMeter(proc.pid) as cpu:
                report = abuse(
                    proc.address,
                    proc.pid,
                    ping_connections=args.ping_connections,
                    pings=args.pings,
                    reset_connections=args.reset_connections,
                    resets=args.resets,
                    flood_connections=args.flood_connections,
                    hold=args.hold,
                )
            alive = proc._require().poll() is None
        finally:
            proc.terminate()
            proc.wait()
    figures = {**dataclasses.asdict(report), "server_alive": alive}
    return {**figures, "server_cpu_s": round(cpu.seconds, 2)}, alive


def summary(items: list[str]) -> str:
    """Outcomes counted by kind: ``10x closed`` for ``closed after 30000`` and the like."""
    counts: dict[str, int] = {}
    for item in items:
        key = item.split(" after ")[0]
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{n}x {k}" for k, n in counts.items())


def table(r: dict[str, object]) -> str:
    def mib(kib: object) -> str:
        return f"{int(str(kib)) / 1024:.0f} MiB"

    def ms(seconds: object) -> str:
        return f"{float(str(seconds)) * 1000:.1f} ms"

    ping: dict[str, int] = r["ping_flood"]  # type: ignore[assignment]
    reset: dict[str, int] = r["rapid_reset"]  # type: ignore[assignment]
    flood: dict[str, int] = r["connection_flood"]  # type: ignore[assignment]
    outcomes: dict[str, list[str]] = r["outcomes"]  # type: ignore[assignment]

    lines = [
        "| attack | volume | rate | how the server answered |",
        "|---|---|---|---|",
        f"| ping flood | {ping['pings']:,} PINGs | {ping['pings_per_s']:,}/s | "
        f"GOAWAY: {summary(outcomes['ping_flood'])} |",
        f"| Rapid Reset | {reset['streams']:,} streams opened+reset | "
        f"{reset['streams_per_s']:,}/s | {summary(outcomes['rapid_reset'])} |",
        f"| connection flood | {flood['connections']:,} idle connections | "
        f"{flood['connections_per_s']:,}/s | held open, {r['server_alive'] and 'server up'} |",
        "",
        "| server RSS before | peak | after | legit p99 before | legit p99 during | "
        "legit calls during | legit errors |",
        "|---|---|---|---|---|---|---|",
        f"| {mib(r['rss_before'])} | {mib(r['rss_peak'])} | {mib(r['rss_after'])} | "
        f"{ms(r['p99_before'])} | {ms(r['p99_during'])} | {r['legit_calls_during']} | "
        f"{len(r['legit_errors'])} |",  # type: ignore[arg-type]
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
