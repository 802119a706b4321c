"""Abuse figures for the README's Security section: gRPC floods, then HTTP attacks.

gRPC: starts ``eventwire serve`` (SQLite, synchronous=normal), measures a
well-behaved client's TrackEvent p99 alone, then again while a raw HTTP/2
client (``eventwire.testing._abuse``) floods the server with PINGs, opens and
resets streams as fast as the socket takes them (CVE-2023-44487's pattern),
and holds hundreds of idle connections. Records the server's RSS before, at
its peak and after, and how each attack ended.

Floods (``--only floods``): a TrackEvent client's and a health prober's p99
(1 s deadlines) while 20 connections pipeline health checks and while 10 do
Rapid Reset, the server alone on core 0.

HTTP (``bench/_http_abuse.py``): gRPC health latency while the gateway takes
64 MiB heads, slowloris connections and a flood of 10,000-event batches, side
by side for the HTTP listeners on their own thread and loop (the default) and
on the gRPC loop (``--no-http-thread``); ``--before DIR`` adds a server run
from another source tree (``git archive BASE src | tar -x -C DIR``) as it
was. The server is pinned to core 0, the attackers and the prober to core 1.

    .venv/bin/python bench/abuse.py            # writes bench/results/abuse.{json,md}
    .venv/bin/python bench/abuse.py --only http --before /tmp/base
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
from _http_abuse import PHASES, http_abuse  # bench/ is on sys.path: this script's folder

from eventwire.testing._abuse import abuse
from eventwire.testing._floods import pipelined_flood, rapid_reset
from eventwire.testing._probes import HealthProber, LegitClient
from eventwire.testing._process import ServerProcess

RESULTS = Path(__file__).parent / "results"


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
    # A partial run (--only) keeps the other half of the last results.
    previous = RESULTS / "abuse.json"
    result: dict[str, Any] = json.loads(previous.read_text()) if previous.exists() else {}
    alive = True
    if args.only in ("all", "grpc"):
        floods, alive = grpc_floods(args)
        result.update(floods)
    command = "python bench/abuse.py " + " ".join(sys.argv[1:])
    if args.only in ("all", "floods"):
        result["floods"] = request_floods(args)
        result["floods_command"] = command
    if args.only in ("all", "http"):
        result["http"] = http_attacks(args)
        result["http_command"] = command
    result["machine"] = (
        f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, grpcio {grpc.__version__}"
    )
    if args.only in ("all", "grpc"):
        result["command"] = command
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "abuse.json").write_text(json.dumps(result, indent=2) + "\n")
    text = (
        (table(result) if "ping_flood" in result else "")
        + floods_table(result)
        + http_table(result)
    )
    (RESULTS / "abuse.md").write_text(text)
    print(text)
    return 0 if alive else 1


def http_attacks(args: argparse.Namespace) -> dict[str, Any]:
    """:func:`http_abuse` on each way of running the HTTP side."""
    modes: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
        "own thread": (("--http-thread",), {}),
        "gRPC loop": (("--no-http-thread",), {}),
    }
    if args.before:
        env = {"PYTHONPATH": str(Path(args.before) / "src")}
        modes["before"] = ((), env)
    os.sched_setaffinity(0, {1})  # the prober and (inherited) the attackers
    out: dict[str, Any] = {}
    for mode, (flags, env) in modes.items():
        with tempfile.TemporaryDirectory() as tmp:
            server = ServerProcess(
                *("--store", f"sqlite:///{tmp}/abuse.db", "--sqlite-synchronous", "normal"),
                *flags,
                env={**os.environ, **env},
                launcher=("taskset", "-c", "0"),
            ).start()
            try:
                out[mode] = http_abuse(
                    server.address, server.http_address, server.pid, args.http_seconds
                )
            finally:
                server.terminate()
                server.wait()
    return out


def request_floods(args: argparse.Namespace) -> dict[str, Any]:
    """A TrackEvent client and a health prober (1 s deadlines) while 20 connections
    pipeline health checks, then while 10 connections do Rapid Reset. The server
    has core 0 to itself; attackers and probes share core 1."""
    import multiprocessing

    os.sched_setaffinity(0, {1})
    out: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        multiprocessing.get_context("spawn").Pool(10) as pool,
    ):
        server = ServerProcess(
            *("--store", f"sqlite:///{tmp}/abuse.db", "--sqlite-synchronous", "normal"),
            *(("--max-concurrent-streams", str(args.streams)) if args.streams else ()),
            launcher=("taskset", "-c", "0"),
        ).start()
        pool.apply(abs, (0,))
        method = "/analytics.AnalyticsService/TrackEvent"
        try:
            for name in ("idle", "pipelined unary, 20 connections", "Rapid Reset, 10 connections"):
                with (
                    LegitClient(server.address, timeout=1.0) as client,
                    HealthProber(server.address, timeout=1.0) as prober,
                ):
                    if name == "idle":
                        time.sleep(args.flood_seconds / 2)
                        attack = ""
                    elif name.startswith("pipelined"):
                        flood = pool.apply(pipelined_flood, (server.address, args.flood_seconds))
                        attack = f"{flood.answered / flood.seconds:,.0f} calls/s answered"
                    else:
                        runs = [
                            pool.apply_async(
                                rapid_reset, (server.address, 50_000), {"method": method}
                            )
                            for _ in range(10)
                        ]
                        ends = [r.get() for r in runs]
                        sent = sum(n for n, _ in ends)
                        closed = sum(end != "open" for _, end in ends)
                        attack = (
                            f"{sent:,} streams reset, {closed}/10 connections closed by the server"
                        )
                out[name] = {
                    "trackevent_p99_ms": round(client.p99() * 1000, 1),
                    "trackevent_calls": len(client.latencies),
                    "trackevent_errors": client.errors,
                    "health_p99_ms": round(prober.p99() * 1000, 1),
                    "health_calls": len(prober.latencies),
                    "health_errors": prober.errors,
                    "attack": attack,
                }
        finally:
            server.terminate()
            server.wait()
    return out


def floods_table(r: dict[str, Any]) -> str:
    floods: dict[str, dict[str, Any]] = r.get("floods", {})
    if not floods:
        return ""
    lines = [
        "",
        "A well-behaved client and a health prober (1 s deadlines) during request floods:",
        "",
        "| flood | TrackEvent p99 | calls | errors | Health/Check p99 | calls | errors | attack |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, m in floods.items():
        lines.append(
            f"| {name} | {m['trackevent_p99_ms']} ms | {m['trackevent_calls']:,} | "
            f"{len(m['trackevent_errors'])} | {m['health_p99_ms']} ms | {m['health_calls']:,} | "
            f"{len(m['health_errors'])} | {m['attack']} |"
        )
    lines += ["", f"{r['machine']}. `{r['floods_command']}`", ""]
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
    lines += ["", f"{r['machine']}. `{r['http_command']}`", ""]
    return "\n".join(lines)


def grpc_floods(args: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(
            "--store", f"sqlite:///{tmp}/abuse.db", "--sqlite-synchronous", "normal"
        ).start()
        try:
            report = abuse(
                server.address,
                server.pid,
                ping_connections=args.ping_connections,
                pings=args.pings,
                reset_connections=args.reset_connections,
                resets=args.resets,
                flood_connections=args.flood_connections,
                hold=args.hold,
            )
            alive = server._require().poll() is None
        finally:
            server.terminate()
            server.wait()
    return {**dataclasses.asdict(report), "server_alive": alive}, alive


def table(r: dict[str, object]) -> str:
    def mib(kib: object) -> str:
        return f"{int(str(kib)) / 1024:.0f} MiB"

    def ms(seconds: object) -> str:
        return f"{float(str(seconds)) * 1000:.1f} ms"

    ping: dict[str, int] = r["ping_flood"]  # type: ignore[assignment]
    reset: dict[str, int] = r["rapid_reset"]  # type: ignore[assignment]
    flood: dict[str, int] = r["connection_flood"]  # type: ignore[assignment]
    outcomes: dict[str, list[str]] = r["outcomes"]  # type: ignore[assignment]

    def summary(items: list[str]) -> str:
        counts: dict[str, int] = {}
        for item in items:
            key = item.split(" after ")[0]
            counts[key] = counts.get(key, 0) + 1
        return ", ".join(f"{n}x {k}" for k, n in counts.items())

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
