"""Per-call overhead of eventwire's resilient client against a bare grpc.aio stub, unary calls.

Both run side by side in one process, against the same server, in interleaved
rounds (bare, resilient, bare, ...) so drift in the machine hits both alike.
The server runs in a subprocess on CPU 0 and this load generator on CPU 1
(bench/_harness.py). The table goes to bench/results/client_overhead.md, one
record per server and RPC to bench/results/history.jsonl.

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
from _harness import Pinning, Run, pinning, publish, record

from eventwire.api import analytics_pb2, analytics_pb2_grpc
from eventwire.client import AnalyticsClient

RESULTS = Path(__file__).parent / "results"
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


async def _run(args: argparse.Namespace, pin: Pinning) -> list[dict[str, Any]]:
    pin.pin_self_to_load()
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
            proc, address = _start(pin.server(argv), log)
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
    return results


def records(this: Run, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One history record per server and RPC."""
    return [
        record(
            this,
            "client_overhead",
            f"{r['target']} {r['method']}",
            {k: v for k, v in r.items() if isinstance(v, int | float)},
            deadline_s=TIMEOUT,
        )
        for r in results
    ]


def _markdown(this: Run, results: list[dict[str, Any]]) -> str:
    m = this.machine
    lines = [
        "# Resilient client overhead (unary calls)",
        "",
        f"`{this.command}`, {this.date}, Python {m['python']}, "
        f"grpcio {m['grpcio']}, {m['nproc']} CPUs; {this.pinning}.",
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
        for r in results
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
    pin = pinning()
    this = Run.now(pin)
    results = asyncio.run(_run(args, pin))
    RESULTS.mkdir(exist_ok=True)
    publish(records(this, results))
    (RESULTS / "client_overhead.md").write_text(_markdown(this, results))
    print(_markdown(this, results))


if __name__ == "__main__":
    main()
