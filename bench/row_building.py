"""Row building speed: ``IngestService.event_rows`` on 1,000-event batches, events/s.

The batch paths (TrackEvents, StreamEvents, the gateway's ``:batch``) turn each
decoded event into a row here: the quick check, the timestamp normalisation and
the properties JSON. No store, no transport: the pipeline is never called.

``--compare PATH`` loads another revision's ``ingest/service.py`` (e.g. from
``git show BASE:src/eventwire/ingest/service.py > /tmp/base_service.py``) and
times both in this process, round by round in turn, so that a busy machine
slows both alike; the ratio is what to read.

    .venv/bin/python bench/row_building.py            # bench/results/row_building.md, history.jsonl
    .venv/bin/python bench/row_building.py --compare /tmp/base_service.py
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from _harness import Run, numbers, publish, record

from eventwire.api import analytics_pb2
from eventwire.ingest import service as current

RESULTS = Path(__file__).parent / "results"
# No server and no load generator: one process timing a function, wherever the OS runs it.
IN_PROCESS = "in process, not pinned (one process times every revision in turn)"


def batch(shape: str, size: int) -> list[analytics_pb2.TrackEventRequest]:
    now_ms = time.time_ns() // 1_000_000
    stamp = {"zero": 0, "ms": now_ms, "s": now_ms // 1000, "ns": now_ms * 1_000_000}[shape]
    return [
        analytics_pb2.TrackEventRequest(
            event_name="page_view",
            user_id=f"user-{i % 1000}",
            timestamp=stamp,
            event_id=f"0190c0de-{i:08d}",
            properties={"plan": "pro", "screen": "checkout", "ab": "b"},
        )
        for i in range(size)
    ]


def load(path: str) -> Any:
    spec = importlib.util.spec_from_file_location("eventwire_compared_service", path)
    assert spec is not None and spec.loader is not None  # noqa: PT018
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def rate(service: Any, reqs: list[analytics_pb2.TrackEventRequest], seconds: float) -> float:
    done = 0
    began = time.perf_counter()
    while (elapsed := time.perf_counter() - began) < seconds:
        service.event_rows(reqs, "t")
        done += len(reqs)
    return done / elapsed


def measure(
    modules: dict[str, Any], shape: str, size: int, rounds: int, seconds: float
) -> list[dict[str, Any]]:
    reqs = batch(shape, size)
    # The pipeline and the store are never touched by event_rows.
    services = {name: m.IngestService(None, None) for name, m in modules.items()}
    rates: dict[str, list[float]] = {name: [] for name in services}
    for name, module in modules.items():
        # Compare fast paths only: another revision may send this shape to the
        # full validator (or refuse it), which is not what is being timed.
        fast = getattr(module, "_fast_row", None)
        if (
            name != "this"
            and fast is not None
            and fast(reqs[0], "t", current.now_ms(), services[name].limits)
        ):
            continue
        if name != "this":
            del rates[name]
    for _ in range(rounds):
        for name, taken in rates.items():
            taken.append(rate(services[name], reqs, seconds))
    return [
        {
            "code": name,
            "shape": shape,
            "batch": size,
            "events_per_s": round(statistics.median(r)),
            "min": round(min(r)),
            "max": round(max(r)),
            "us_per_event": round(1e6 / statistics.median(r), 3),
        }
        for name, r in rates.items()
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seconds", type=float, default=0.5)
    parser.add_argument("--shapes", default="ms,zero,s,ns")
    parser.add_argument("--compare", help="another revision's ingest/service.py")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    this = Run.now(IN_PROCESS)
    m = this.machine
    modules = {"this": current}
    if args.compare:
        modules["compared"] = load(args.compare)
    results = [
        row
        for shape in args.shapes.split(",")
        for row in measure(modules, shape, args.batch, args.rounds, args.seconds)
    ]
    lines = [
        "| code | timestamps | batch | events/s (median) | min-max | µs/event |",
        "|---|---|---|---|---|---|",
        *(
            f"| {r['code']} | {r['shape']} | {r['batch']:,} | {r['events_per_s']:,} | "
            f"{r['min']:,}-{r['max']:,} | {r['us_per_event']} |"
            for r in results
        ),
        "",
        f"{m['cpu_model']}, {m['nproc']} cores, Python {m['python']}. "
        f"`python bench/row_building.py {' '.join(sys.argv[1:])}`".rstrip(),
        "",
    ]
    print("\n".join(lines))
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        publish(
            record(this, "row_building", f"{r['code']} {r['shape']} {r['batch']}", numbers(r))
            for r in results
        )
        (RESULTS / "row_building.md").write_text("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
