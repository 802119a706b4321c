"""Abuse figures for the README's Security section: ping flood, Rapid Reset, connection flood.

Starts ``eventwire serve`` (SQLite, synchronous=normal), measures a
well-behaved client's TrackEvent p99 alone, then again while a raw HTTP/2
client (``eventwire.testing._abuse``) floods the server with PINGs, opens and
resets streams as fast as the socket takes them (CVE-2023-44487's pattern),
and holds hundreds of idle connections. Records the server's RSS before, at
its peak and after, and how each attack ended.

    .venv/bin/python bench/abuse.py            # writes bench/results/abuse.{json,md}
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import grpc

from eventwire.testing._abuse import abuse
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
    args = parser.parse_args()
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
    result = {
        **dataclasses.asdict(report),
        "server_alive": alive,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, grpcio {grpc.__version__}",
        "command": "python bench/abuse.py " + " ".join(sys.argv[1:]),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "abuse.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "abuse.md").write_text(table(result))
    print(table(result))
    return 0 if alive else 1


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
        f"{r['machine']}. `{r['command']}`",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
