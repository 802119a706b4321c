"""Cost of tracing on unary TrackEvent: the same server with tracing off and on.

"off" is ``--trace-exporter none`` (the default: no span is created at all);
"sampler-off" is ``--trace-exporter otlp`` with ``OTEL_TRACES_SAMPLER=always_off``
(the exporter is wired up, no trace is sampled); "unexported" samples every
trace and creates and ends every span, but the provider has no processor, so
nothing is exported (bench/_unexported_spans.py): the cost of the SDK's span
objects alone, the floor under any exporter; "on" is ``--trace-exporter
otlp`` sampling and exporting every trace through the batch processor to a real
OTLP/gRPC receiver; "on-10%" is the same with the standard head sampler
``OTEL_TRACES_SAMPLER=parentbased_traceidratio`` at ``0.1``. The receiver
counts the spans it gets, which gives the spans per request.

The whole server process (every thread: grpc's, the SQLite writer's, the span
export thread) runs under ``taskset -c 0``; the load generator (grpc.aio, N
calls in flight) and the span receiver are pinned to CPU 1 (bench/_harness.py),
and the server's CPU per call is measured over each window. Variants alternate
within each repeat, in rotated order, and the report gives medians with
min-max, so every variant sees the same machine noise.

    .venv/bin/python bench/tracing_overhead.py --repeats 3 --duration 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from _cpu import per_request_us
from _harness import CpuMeter, Pinning, Run, eventwire_server, pinning, publish, record

from eventwire.api import analytics_pb2, analytics_pb2_grpc

RESULTS = Path(__file__).parent / "results"
VARIANTS = ("off", "sampler-off", "unexported", "on", "on-10%")
UNEXPORTED = Path(__file__).parent / "_unexported_spans.py"

# The receiver answers each line on its stdin with how many spans it has got.
SINK = """
import asyncio, sys, threading, grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as pb
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as rpc
class Sink(rpc.TraceServiceServicer):
    spans = 0
    async def Export(self, request, context):
        Sink.spans += sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
        return pb.ExportTraceServiceResponse()
async def main():
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    rpc.add_TraceServiceServicer_to_server(Sink(), server)
    print(server.add_insecure_port("127.0.0.1:0"), flush=True)
    await server.start()
    await server.wait_for_termination()
def report():
    for _ in sys.stdin:
        print(Sink.spans, flush=True)
threading.Thread(target=report, daemon=True).start()
asyncio.run(main())
"""


async def load(address: str, duration: float, in_flight: int) -> dict[str, float]:
    latencies: list[float] = []
    done = 0
    stop = time.perf_counter() + duration
    async with grpc.aio.insecure_channel(address) as channel:
        stub = analytics_pb2_grpc.AnalyticsServiceStub(channel)
        request = analytics_pb2.TrackEventRequest(
            event_name="bench", user_id="u-1", properties={"plan": "pro"}
        )

        async def worker() -> None:
            nonlocal done
            while (start := time.perf_counter()) < stop:
                await stub.TrackEvent(request, timeout=5)
                latencies.append(time.perf_counter() - start)
                done += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "calls": done,
        "rps": done / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
    }


class Receiver:
    """The OTLP/gRPC receiver, in its own process on the load generator's CPU."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-c", SINK], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self._proc.stdin is not None
        assert self._proc.stdout is not None
        self._stdin, self._stdout = self._proc.stdin, self._proc.stdout
        self.port = int(self._stdout.readline())
        pinning().pin_pid_to_load(self._proc.pid)

    def spans(self) -> int:
        self._stdin.write("\n")
        self._stdin.flush()
        return int(self._stdout.readline())

    def close(self) -> None:
        self._proc.terminate()
        self._proc.wait()


def run_variant(
    variant: str, receiver: Receiver, args: argparse.Namespace, tmp: Path, pin: Pinning
) -> dict[str, float]:
    sink_port = receiver.port
    env = dict(os.environ)
    extra = ["--trace-exporter", "none"]
    program = [sys.executable, "-m", "eventwire"]
    if variant == "unexported":
        extra = ["--trace-exporter", "otlp"]
        program = [sys.executable, str(UNEXPORTED)]
    if variant.startswith("on"):
        extra = ["--trace-exporter", "otlp"]
        env |= {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}",
            "OTEL_EXPORTER_OTLP_INSECURE": "true",
        }
    if variant == "sampler-off":
        extra = ["--trace-exporter", "otlp"]
        env |= {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}",
            "OTEL_EXPORTER_OTLP_INSECURE": "true",
            "OTEL_TRACES_SAMPLER": "always_off",
        }
    if variant == "on-10%":
        env |= {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}
    db = tmp / f"{variant}-{time.monotonic_ns()}.db"
    server = eventwire_server(
        "--store",
        f"sqlite:///{db}",
        "--sqlite-synchronous",
        "normal",
        "--http-address",
        "",
        "--metrics-address",
        "",
        *extra,
        http_address="",
        env=env,
        # Under taskset from the start: every thread of the server (grpc's, the
        # SQLite writer, the span exporter) on the server's CPU, not just the main one.
        pin=pin,
        program=program,
    )
    spans_before = receiver.spans()
    server.start()
    try:
        warm_up = asyncio.run(load(server.address, 1.0, args.in_flight))
        with CpuMeter(server.pid) as cpu:
            result = asyncio.run(load(server.address, args.duration, args.in_flight))
    finally:
        server.terminate()
        server.wait()  # the server flushes its spans before it exits
    calls = warm_up["calls"] + result["calls"]
    return result | {
        "spans_per_call": (receiver.spans() - spans_before) / calls,
        "cpu_us": per_request_us(cpu.seconds, result["calls"]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--in-flight", type=int, default=64)
    args = parser.parse_args()
    pin = pinning()
    pin.pin_self_to_load()
    this = Run.now(pin)
    receiver = Receiver()
    runs: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(args.repeats):
                order = VARIANTS[r % len(VARIANTS) :] + VARIANTS[: r % len(VARIANTS)]
                for variant in order:
                    result = run_variant(variant, receiver, args, Path(tmp), pin)
                    runs[variant].append(result)
                    print(
                        f"repeat {r + 1} {variant:>11}: {result['rps']:,.0f} req/s "
                        f"p50 {result['p50_ms']:.2f} ms p99 {result['p99_ms']:.2f} ms",
                        flush=True,
                    )
    finally:
        receiver.close()
    summary = {
        v: {
            k: statistics.median(run[k] for run in runs[v])
            for k in ("rps", "p50_ms", "p99_ms", "spans_per_call", "cpu_us")
        }
        | {
            "rps_min": min(run["rps"] for run in runs[v]),
            "rps_max": max(run["rps"] for run in runs[v]),
        }
        for v in VARIANTS
    }
    costs = {v: 1 - summary[v]["rps"] / summary["off"]["rps"] for v in VARIANTS}
    publish(
        record(
            this,
            "tracing_overhead",
            v,
            summary[v] | {"throughput_cost": costs[v]},
            in_flight=args.in_flight,
            repeats=args.repeats,
            duration_s=args.duration,
        )
        for v in VARIANTS
    )
    m = this.machine
    where = f"{this.pinning}; the OTLP receiver on the load's CPU" if pin.pinned else this.pinning
    lines = [
        "# Tracing overhead, unary TrackEvent",
        "",
        f"{m['cpu_model']}, {m['nproc']} cores, Python {m['python']}; {where}; "
        f"{args.in_flight} calls in flight, "
        f"{args.repeats} interleaved repeats of {args.duration:.0f} s, medians (min-max).",
        "",
        "| tracing | req/s | cost | spans exported per call | p50 ms | p99 ms "
        "| server CPU µs/call |",
        "|---|---|---|---|---|---|---|",
    ]
    for v in VARIANTS:
        s = summary[v]
        lines.append(
            f"| {v} | {s['rps']:,.0f} ({s['rps_min']:,.0f}-{s['rps_max']:,.0f}) | "
            f"{costs[v]:.1%} | {s['spans_per_call']:.2f} | "
            f"{s['p50_ms']:.2f} | {s['p99_ms']:.2f} | {s['cpu_us']:.0f} |"
        )
    lines += [
        "",
        "Cost is the throughput lost against off. Target (issue 9): at most 15% with tracing "
        "on, nothing measurable with it off. The unexported variant creates every span and "
        "exports none: what the SDK's span objects cost before any exporter runs.",
        "",
        "Reproduce: `.venv/bin/python bench/tracing_overhead.py "
        f"--repeats {args.repeats} --duration {args.duration:g}`",
        "",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tracing_overhead.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
