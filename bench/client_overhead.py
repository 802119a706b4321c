"""Per-call overhead of eventwire's resilient client against a bare grpc.aio stub, unary calls.

Both run side by side in one process, against the same server, in interleaved
rounds (bare, resilient, bare, ...) so drift in the machine hits both alike.
The server runs in a subprocess; with ``taskset`` available it is pinned to one
core and this load generator to another.

Targets:
* ``null``: a do-nothing grpc.aio AnalyticsService (CountEvents answers a
  constant): the client's overhead with nothing to hide it, the worst case;
* ``eventwire``: the real server, CountEvents (a SQLite read) and TrackEvent
  (a durable, group-committed write).

The bare stub gets the same deadline per call and grpcio retries off; the
resilient client runs its defaults (deadline, RetryPolicy, CircuitBreakerPolicy,
ThrottlePolicy), so the overhead measured is the whole policy stack.

Usage: .venv/bin/python bench/client_overhead.py [--calls 500] [--rounds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc

from eventwire.api import analytics_pb2, analytics_pb2_grpc
from eventwire.client import AnalyticsClient

RESULTS = Path(__file__).parent / "results"
SERVER_CORE = 0
CLIENT_CORE = 1
TIMEOUT = 2.0


class _Null(analytics_pb2_grpc.AnalyticsServiceServicer):
    async def CountEvents(
        self, request: analytics_pb2.CountEventsRequest, context: Any
    ) -> analytics_pb2.CountEventsResponse:
        return analytics_pb2.CountEventsResponse(count=1)

    async def TrackEvent(
        self, request: analytics_pb2.TrackEventRequest, context: Any
    ) -> analytics_pb2.TrackEventResponse:
        return analytics_pb2.TrackEventResponse(success=True, event_id=request.event_id)


async def _serve_null() -> None:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    servicer: Any = _Null  # the base class answers UNIMPLEMENTED for the rest
    analytics_pb2_grpc.add_AnalyticsServiceServicer_to_server(servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(json.dumps({"grpc_address": f"127.0.0.1:{port}"}), file=sys.stderr, flush=True)
    await server.wait_for_termination()


def _pin(argv: list[str], core: int) -> list[str]:
    taskset = shutil.which("taskset")
    return [taskset, "-c", str(core), *argv] if taskset else argv


def _start(argv: list[str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    # The server logs to a file, never to a pipe nobody reads once it serves.
    with log.open("wb") as sink:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text()}")
        for line in log.read_bytes().splitlines():
            if line.startswith(b"{") and (address := json.loads(line).get("grpc_address")):
                return proc, address
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("server did not start")


async def _measure(call: Callable[[], Awaitable[Any]], calls: int) -> float:
    """Mean seconds per call over ``calls`` sequential calls."""
    started = time.perf_counter()
    for _ in range(calls):
        await call()
    return (time.perf_counter() - started) / calls


async def _compare(address: str, method: str, calls: int, rounds: int) -> dict[str, Any]:
    bare_channel = grpc.aio.insecure_channel(address, options=[("grpc.enable_retries", 0)])
    stub = analytics_pb2_grpc.AnalyticsServiceStub(bare_channel)
    client = AnalyticsClient(address, timeout=TIMEOUT)

    # Both sides build a fresh request per call, as a real caller does.
    async def bare_count() -> Any:
        request = analytics_pb2.CountEventsRequest(event_name="bench")
        return await stub.CountEvents(request, timeout=TIMEOUT)

    async def resilient_count() -> Any:
        return await client.count_events("bench")

    async def bare_track() -> Any:
        request = analytics_pb2.TrackEventRequest(
            event_name="bench", user_id="u", event_id=uuid.uuid4().hex
        )
        return await stub.TrackEvent(request, timeout=TIMEOUT)

    async def resilient_track() -> Any:
        return await client.track_event("bench", "u")

    bare, resilient = (
        (bare_count, resilient_count) if method == "CountEvents" else (bare_track, resilient_track)
    )
    try:
        # Warm both paths: connections, method registration, server caches.
        await _measure(bare, 200)
        await _measure(resilient, 200)
        bare_runs, resilient_runs = [], []
        for _ in range(rounds):
            bare_runs.append(await _measure(bare, calls))
            resilient_runs.append(await _measure(resilient, calls))
    finally:
        await client.close()
        await bare_channel.close()
    bare_us = statistics.median(bare_runs) * 1e6
    resilient_us = statistics.median(resilient_runs) * 1e6
    return {
        "method": method,
        "calls_per_round": calls,
        "rounds": rounds,
        "bare_us_per_call": round(bare_us, 1),
        "resilient_us_per_call": round(resilient_us, 1),
        "overhead_us_per_call": round(resilient_us - bare_us, 1),
        "ratio": round(resilient_us / bare_us, 3),
        "bare_rounds_us": [round(r * 1e6, 1) for r in bare_runs],
        "resilient_rounds_us": [round(r * 1e6, 1) for r in resilient_runs],
    }


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    pinned = bool(shutil.which("taskset")) and (os.cpu_count() or 1) >= 2
    if pinned:
        os.sched_setaffinity(0, {CLIENT_CORE})
    results: list[dict[str, Any]] = []
    exe = Path(sys.executable)
    with tempfile.TemporaryDirectory(prefix="eventwire-bench-") as tmp:
        targets = {
            "null": [str(exe), __file__, "--serve-null"],
            "eventwire": [
                str(exe.parent / "eventwire"),
                "serve",
                "--address",
                "127.0.0.1:0",
                "--http-address",
                "",
                "--log-format",
                "json",
                "--store",
                f"sqlite:///{Path(tmp) / 'bench.db'}",
            ],
        }
        for target, argv in targets.items():
            log = Path(tmp) / f"{target}.log"
            proc, address = _start(_pin(argv, SERVER_CORE) if pinned else argv, log)
            try:
                methods = ["CountEvents"] if target == "null" else ["CountEvents", "TrackEvent"]
                for method in methods:
                    row = await _compare(address, method, args.calls, args.rounds)
                    row["target"] = target
                    results.append(row)
                    print(
                        f"{target:9} {method:11} bare {row['bare_us_per_call']:8.1f} us  "
                        f"resilient {row['resilient_us_per_call']:8.1f} us  "
                        f"ratio {row['ratio']:.3f}",
                        flush=True,
                    )
            finally:
                proc.terminate()
                proc.wait(10)
    return {
        "benchmark": "client_overhead",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "cpus": os.cpu_count(),
        "pinned": (
            {"server_core": SERVER_CORE, "client_core": CLIENT_CORE, "tool": "taskset"}
            if pinned
            else None
        ),
        "deadline_s": TIMEOUT,
        "command": "python bench/client_overhead.py "
        + f"--calls {args.calls} --rounds {args.rounds}",
        "results": results,
    }


def _markdown(report: dict[str, Any]) -> str:
    pinned = report["pinned"]
    where = (
        f"server pinned to core {pinned['server_core']}, load generator to core "
        f"{pinned['client_core']} (taskset)"
        if pinned
        else "not pinned (taskset unavailable or a single core)"
    )
    lines = [
        "# Resilient client overhead (unary calls)",
        "",
        f"`{report['command']}`, {report['when']}, Python {report['python']}, "
        f"grpcio {report['grpcio']}, {report['cpus']} CPUs; {where}.",
        "Sequential calls, median of the rounds' mean latency; bare = generated stub on a "
        "plain grpc.aio channel with the same deadline; resilient = AnalyticsClient with "
        "default retry, breaker, throttle and deadline.",
        "",
        "| server | RPC | bare µs/call | resilient µs/call | overhead µs | ratio |",
        "|---|---|---:|---:|---:|---:|",
    ]
    lines.extend(
        f"| {r['target']} | {r['method']} | {r['bare_us_per_call']} | "
        f"{r['resilient_us_per_call']} | {r['overhead_us_per_call']} | {r['ratio']} |"
        for r in report["results"]
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500, help="sequential calls per round")
    parser.add_argument(
        "--rounds", type=int, default=20, help="rounds, alternating bare and resilient"
    )
    parser.add_argument("--serve-null", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_null:
        asyncio.run(_serve_null())
        return
    report = asyncio.run(_run(args))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "client_overhead.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "client_overhead.md").write_text(_markdown(report))
    print(_markdown(report))


if __name__ == "__main__":
    main()
