"""Instructions per traced call: the server under callgrind, tracing off and on.

Timed ratios on a shared two-core machine swing by more than T1's 5 % (see
bench/notes.md), instruction counts do not. This runs ``eventwire serve``
under ``valgrind --tool=callgrind`` (every thread of the process: the loop,
the SQLite writer, grpc's, the span export thread), warms it up, zeroes the
counters (``callgrind_control -z``), drives N unary ``TrackEvent`` calls
(``--in-flight``, 1 by default) from this process (not counted), dumps the
counters and divides by N. Variants, each a fresh server:

* ``off``: ``--trace-exporter none``, no span work at all;
* ``unexported``: every call sampled, spans made and ended, no processor
  (bench/_unexported_spans.py): the span objects alone;
* ``drop``: every call sampled, the server's own processor, an exporter that
  drops what it is given: making spans plus queueing them for export;
* ``otlp``: ``--trace-exporter otlp`` to a real OTLP receiver on the other
  core, every call sampled (T1's "every call");
* ``otlp-10%``: the same, ``parentbased_traceidratio`` at 0.1 (T1's 10 %).

So ``drop - unexported`` is the processor, ``otlp - drop`` the export thread
(OTLP encoding and grpc sending), ``unexported - off`` the spans themselves.
At 1 in flight each call is its own group commit (2 spans per traced call);
with more, group commit sizes follow timing, which valgrind changes: spans per
call are printed beside each count.

    .venv/bin/python bench/tracing_callgrind.py --calls 1000 [--variants off,otlp] [--src DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
from tracing_overhead import Receiver

from eventwire.api import analytics_pb2, analytics_pb2_grpc

BENCH = Path(__file__).parent
VARIANTS = ("off", "unexported", "drop", "otlp", "otlp-10%")
REQUEST = analytics_pb2.TrackEventRequest(
    event_name="page_view", user_id="user-42", properties={"plan": "pro", "src": "callgrind"}
)
# A processor like the server's own, with an exporter that drops every span.
DROP = """
import sys
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from eventwire.observability import tracing
from eventwire.runtime import server as app
from eventwire.runtime.cli import main
class Drop(SpanExporter):
    count = 0
    def export(self, spans):
        Drop.count += len(spans)
        sys.stderr.write('{"dropped_spans": %d}\\n' % Drop.count)
        return SpanExportResult.SUCCESS
made = tracing.tracer_provider
# (An older src has no span_processor: the SDK's batch processor is what it used.)
wrap = getattr(tracing, "span_processor", tracing.BatchSpanProcessor)
app.tracer_provider = lambda exporter, name="eventwire", processor=None: made(
    exporter, name, wrap(Drop()))
sys.argv[0] = "eventwire"
sys.exit(main())
"""


def program(variant: str, tmp: Path) -> tuple[list[str], list[str]]:
    if variant == "unexported":
        return [sys.executable, str(BENCH / "_unexported_spans.py")], ["--trace-exporter", "otlp"]
    if variant == "drop":
        script = tmp / "drop.py"
        script.write_text(DROP)
        return [sys.executable, str(script)], ["--trace-exporter", "otlp"]
    if variant == "off":
        return [sys.executable, "-m", "eventwire"], ["--trace-exporter", "none"]
    return [sys.executable, "-m", "eventwire"], ["--trace-exporter", "otlp"]


async def drive(address: str, calls: int, in_flight: int) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = analytics_pb2_grpc.AnalyticsServiceStub(channel)
        left = calls

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await stub.TrackEvent(REQUEST)

        await asyncio.gather(*(worker() for _ in range(in_flight)))


def total_instructions(out: Path) -> int:
    """Ir of the first dump (``callgrind_control -d``), summed over every thread's file."""
    total = 0
    for part in out.parent.glob(out.name + ".1*"):
        text = part.read_text(errors="replace")
        match = re.search(r"^summary:\s+(\d+)", text, re.M) or re.search(
            r"^totals:\s+(\d+)", text, re.M
        )
        total += int(match.group(1)) if match else 0
    return total


def measure(  # noqa: PLR0917 - one run's settings
    variant: str, calls: int, in_flight: int, receiver: Receiver, tmp: Path, src: Path
) -> dict[str, float]:
    argv, extra = program(variant, tmp)
    db = tmp / f"{variant.replace('%', '')}.db"
    out = tmp / f"cg.{variant.replace('%', '')}"
    env = dict(os.environ)
    env |= {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.port}",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "PYTHONPATH": str(src),
    }
    if variant == "otlp-10%":
        env |= {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}
    cmd = [
        "valgrind", "--tool=callgrind", "--separate-threads=yes",
        f"--callgrind-out-file={out}", *argv, "serve",
        "--address", "127.0.0.1:0", "--http-address", "127.0.0.1:0",
        "--metrics-address", "127.0.0.1:0", "--log-format", "json",
        "--store", f"sqlite:///{db}", *extra,
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
    )
    address: list[str] = []
    dropped = [0]
    ready = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "xport" in line and ("rror" in line or "arn" in line):
                print(f"{variant}: {line.strip()[:300]}", file=sys.stderr)
            if spans := re.search(r'"dropped_spans": (\d+)', line):
                dropped[0] = int(spans.group(1))
            found = re.search(r'"grpc_address":\s*"([^"]+)"', line)
            if found and not address:
                address.append(found.group(1))
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    begun = time.monotonic()
    while not ready.wait(1):
        if proc.poll() is not None or time.monotonic() - begun > 600:
            break
    if not ready.is_set():
        proc.kill()
        proc.wait()
        raise RuntimeError(f"{variant}: the server did not start")
    spans_before = receiver.spans()
    asyncio.run(drive(address[0], 200, in_flight))  # warm-up: imports, caches, the first commits
    time.sleep(6)  # one export interval: the warm-up's spans leave before counting starts
    subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True, capture_output=True)
    spans_counted = receiver.spans() + dropped[0]
    asyncio.run(drive(address[0], calls, in_flight))
    time.sleep(6)  # the export thread's last batch of these calls
    subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True, capture_output=True)
    spans_after = receiver.spans() + dropped[0]
    proc.terminate()
    proc.wait(600)
    del spans_before
    return {
        "instructions_per_call": total_instructions(out) / calls,
        "spans_per_call": (spans_after - spans_counted) / calls,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument(
        "--in-flight",
        type=int,
        default=1,
        help="calls in flight; at 1 every call is its own group commit, so the counts "
        "repeat exactly (at 64 the batches' sizes follow valgrind's timing)",
    )
    parser.add_argument(
        "--src", type=Path, default=BENCH.parent / "src", help="the eventwire source to run"
    )
    args = parser.parse_args()
    receiver = Receiver()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            print("| variant | instructions per call | spans per call (exported) |")
            print("|---|---|---|")
            for variant in args.variants.split(","):
                row = measure(
                    variant, args.calls, args.in_flight, receiver, Path(tmp), args.src.resolve()
                )
                print(
                    f"| {variant} | {row['instructions_per_call']:,.0f} "
                    f"| {row['spans_per_call']:.2f} |",
                    flush=True,
                )
    finally:
        receiver.close()


if __name__ == "__main__":
    main()
