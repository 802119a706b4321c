"""Abuse scenarios against a gRPC server, for tests and benchmarks.

:func:`abuse` runs a ping flood, Rapid Reset (CVE-2023-44487's pattern) and a
connection flood while a well-behaved client keeps calling. The raw HTTP/2
client is :mod:`eventwire.testing._abuse_h2`, the request floods
:mod:`eventwire.testing._floods`, the measuring clients
:mod:`eventwire.testing._probes`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from eventwire.testing._abuse_h2 import RawH2, Seen, grpc_headers, idle_connections, rss_kib
from eventwire.testing._floods import pipelined_flood, rapid_reset
from eventwire.testing._probes import HealthProber, LegitClient

__all__ = [
    "AbuseReport",
    "HealthProber",
    "LegitClient",
    "RawH2",
    "Seen",
    "abuse",
    "grpc_headers",
    "idle_connections",
    "pipelined_flood",
    "rapid_reset",
    "rss_kib",
]


@dataclass
class AbuseReport:
    """What :func:`abuse` measured; times in seconds, memory in KiB."""

    rss_before: int = 0
    rss_after: int = 0
    rss_peak: int = 0
    p99_before: float = 0.0
    p99_during: float = 0.0
    legit_calls_during: int = 0
    legit_errors: list[str] = field(default_factory=list)
    ping_flood: dict[str, float] = field(default_factory=dict)
    rapid_reset: dict[str, float] = field(default_factory=dict)
    connection_flood: dict[str, float] = field(default_factory=dict)
    outcomes: dict[str, list[str]] = field(default_factory=dict)


def _ping_flood(address: str, connections: int, pings: int) -> list[str]:
    outcomes = []
    for _ in range(connections):
        with RawH2(address) as conn:
            conn.ping(pings)
            got = conn.wait_for("goaway", 5)
            reason = conn.seen.goaway.additional_data if conn.seen.goaway else b""
            outcomes.append(reason.decode() if got and reason else "no goaway")
    return outcomes


def _rapid_resets(address: str, connections: int, streams: int) -> list[tuple[int, str]]:
    method = "/analytics.AnalyticsService/TrackEvent"
    return [rapid_reset(address, streams, method=method) for _ in range(connections)]


def _connection_flood(address: str, count: int, hold: float, pid: int) -> tuple[int, int]:
    with (
        idle_connections(address, count // 2, preface=True) as a,
        idle_connections(address, count - len(a), preface=False) as b,
    ):
        time.sleep(hold)
        return len(a) + len(b), rss_kib(pid)


def abuse(
    address: str,
    pid: int,
    *,
    ping_connections: int = 20,
    pings: int = 1000,
    reset_connections: int = 4,
    resets: int = 50_000,
    flood_connections: int = 500,
    hold: float = 1.0,
    baseline: float = 1.5,
) -> AbuseReport:
    """Ping flood, Rapid Reset and connection flood on ``address``, while a legitimate
    client keeps calling; the server's RSS (``pid``) before, at its peak, and after.

    The attacks run in a child process so that they do not compete with the
    legitimate client for this interpreter's GIL: its latencies are the server's.
    """
    import multiprocessing

    report = AbuseReport(rss_before=rss_kib(pid))
    with multiprocessing.get_context("spawn").Pool(1) as attacker:
        attacker.apply(time.sleep, (0,))  # the child is up before anything is timed
        with LegitClient(address) as calm:
            time.sleep(baseline)
        report.p99_before = calm.p99()
        report.legit_errors += calm.errors

        with LegitClient(address) as busy:
            began = time.perf_counter()
            pinged = attacker.apply(_ping_flood, (address, ping_connections, pings))
            elapsed = time.perf_counter() - began
            report.ping_flood = {
                "pings": ping_connections * pings,
                "pings_per_s": round(ping_connections * pings / elapsed),
            }
            report.rss_peak = max(report.rss_peak, rss_kib(pid))

            began = time.perf_counter()
            resets_done = attacker.apply_async(_rapid_resets, (address, reset_connections, resets))
            while not resets_done.ready():
                report.rss_peak = max(report.rss_peak, rss_kib(pid))
                time.sleep(0.05)
            reset_outcomes = resets_done.get()
            elapsed = time.perf_counter() - began
            sent_total = sum(sent for sent, _ in reset_outcomes)
            report.rapid_reset = {
                "streams": sent_total,
                "streams_per_s": round(sent_total / elapsed),
            }

            began = time.perf_counter()
            opened, rss = attacker.apply(_connection_flood, (address, flood_connections, hold, pid))
            report.rss_peak = max(report.rss_peak, rss)
            report.connection_flood = {
                "connections": opened,
                "connections_per_s": round(opened / max(1e-9, time.perf_counter() - began - hold)),
            }
    report.p99_during = busy.p99()
    report.legit_calls_during = len(busy.latencies)
    report.legit_errors += busy.errors
    report.outcomes = {
        "ping_flood": pinged,
        "rapid_reset": [f"{outcome} after {sent}" for sent, outcome in reset_outcomes],
        "connection_flood": [f"{opened} held {hold:g}s"],
    }
    time.sleep(1.0)  # let the server release what the floods held
    report.rss_after = rss_kib(pid)
    return report
