"""What the web console costs ingest: nobody looking, and one Live page open.

Three variants of the same server, in the same run, each a fresh server and
database per repeat, in rotated order:

* ``no-gateway``: ``--http-address ""``: no HTTP door, so no console can exist;
* ``closed``: the gateway (and so the console) on, nobody has it open;
* ``open``: one headless chromium (Debian's, through Playwright) on the Live
  page, unfiltered, for the whole window: it is sent every event committed.

The load is ``bench/_load.py grpc`` (1k-event TrackEvents batches, 8 in
flight). The server runs under ``taskset`` on the server CPU; the load and the
browser inherit this process's pinning to the load CPU (bench/_harness.py).
Server CPU is utime+stime of its process tree over the load's whole run,
divided by the events it stored. The claim to check: ``closed`` costs what
``no-gateway`` does (the console does nothing until someone opens it);
``open`` shows what one live viewer costs.

    .venv/bin/python bench/console.py --repeats 3 --seconds 5
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from _cpu import cpu_seconds, per_request_us
from _harness import ROOT, Pinning, Run, eventwire_server, pinning, publish, record

RESULTS = Path(__file__).parent / "results"
VARIANTS = ("no-gateway", "closed", "open")

# The browser, in a process of its own (it inherits the load CPU): prints "open"
# once the Live page's tail has started, then on a line from stdin prints what
# the page counted (rows drawn and skipped) and exits.
VIEWER = """
import json, sys
sys.path.insert(0, sys.argv[2])
from playwright.sync_api import sync_playwright
from tests.support.browser import launch
with sync_playwright() as p:
    browser = launch(p)
    page = browser.new_page()
    page.goto(sys.argv[1] + "/console/")
    page.wait_for_selector("#live-status[data-events=open]", timeout=30000)
    print("open", flush=True)
    sys.stdin.readline()
    rate = page.locator("#live-rate")
    print(json.dumps({"drawn": int(rate.get_attribute("data-drawn-total") or 0),
                      "skipped": int(rate.get_attribute("data-skipped-total") or 0)}), flush=True)
    browser.close()
"""


def load(target: str, seconds: float, server_pid: int) -> dict[str, float]:
    before = cpu_seconds(server_pid)
    argv = [
        sys.executable, str(Path(__file__).parent / "_load.py"), "grpc", target,
        "--seconds", str(seconds), "--warmup", "1", "--in-flight", "8",
    ]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    result: dict[str, float] = orjson.loads(out.strip().splitlines()[-1])
    result["cpu_us"] = per_request_us(cpu_seconds(server_pid) - before, result["accepted_total"])
    return result


def run_variant(variant: str, seconds: float, tmp: Path, pin: Pinning) -> dict[str, float]:
    db = tmp / f"{variant}-{time.monotonic_ns()}.db"
    http = "" if variant == "no-gateway" else "127.0.0.1:0"
    server = eventwire_server(
        "--store", f"sqlite:///{db}", "--sqlite-synchronous", "normal", pin=pin, http_address=http
    )
    viewer: subprocess.Popen[str] | None = None
    with server:
        try:
            if variant == "open":
                viewer = subprocess.Popen(
                    [sys.executable, "-c", VIEWER, f"http://{server.http_address}", str(ROOT)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
                assert viewer.stdout is not None
                if viewer.stdout.readline().strip() != "open":
                    raise RuntimeError("the browser did not open the Live page")
            result = load(server.address, seconds, server.pid)
            if viewer is not None:
                assert viewer.stdin is not None
                assert viewer.stdout is not None
                time.sleep(1.5)  # the page reports its counts once a second
                viewer.stdin.write("\n")
                viewer.stdin.flush()
                seen = orjson.loads(viewer.stdout.readline())
                result["page_rows"] = seen["drawn"] + seen["skipped"]
                result["page_drawn"] = seen["drawn"]
        finally:
            if viewer is not None:
                viewer.kill()
                viewer.wait()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    pin = pinning()
    pin.pin_self_to_load()
    this = Run.now(pin)
    runs: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for variant in VARIANTS[r % 3 :] + VARIANTS[: r % 3]:
                result = run_variant(variant, args.seconds, Path(tmp), pin)
                runs[variant].append(result)
                print(
                    f"repeat {r + 1} {variant:>10}: {result['events_per_s']:,.0f} ev/s, "
                    f"{result['cpu_us']:.2f} µs CPU/event"
                    + (
                        f", page counted {result['page_rows']:,.0f} rows"
                        if variant == "open"
                        else ""
                    ),
                    flush=True,
                )
    summary: dict[str, dict[str, Any]] = {}
    for v in VARIANTS:
        rates = [run["events_per_s"] for run in runs[v]]
        summary[v] = {
            "events_per_s": statistics.median(rates),
            "events_per_s_min": min(rates),
            "events_per_s_max": max(rates),
            "cpu_us": statistics.median(run["cpu_us"] for run in runs[v]),
        }
        if v == "open":
            summary[v]["page_rows"] = statistics.median(run["page_rows"] for run in runs[v])
    base = summary["no-gateway"]
    for v in VARIANTS:
        summary[v]["ratio"] = summary[v]["events_per_s"] / base["events_per_s"]
        summary[v]["cpu_ratio"] = summary[v]["cpu_us"] / base["cpu_us"]
    publish(
        record(this, "console", v, summary[v], repeats=args.repeats, seconds=args.seconds)
        for v in VARIANTS
    )
    m = this.machine
    lines = [
        "# The web console's cost to ingest",
        "",
        f"{m['cpu_model']}, {m['nproc']} cores, Python {m['python']}; {this.pinning}; "
        f"1k-event gRPC batches, 8 in flight; {args.repeats} rotated repeats of "
        f"{args.seconds:g} s, medians (min-max).",
        "",
        "| console | events/s | vs no gateway | server CPU µs/event | vs no gateway |",
        "|---|---|---|---|---|",
    ]
    for v in VARIANTS:
        s = summary[v]
        lines.append(
            f"| {v} | {s['events_per_s']:,.0f} ({s['events_per_s_min']:,.0f}-"
            f"{s['events_per_s_max']:,.0f}) | {s['ratio']:.2f}x | {s['cpu_us']:.2f} | "
            f"{s['cpu_ratio']:.2f}x |"
        )
    lines += [
        "",
        f"The open page accounted for every event (it counted {summary['open']['page_rows']:,.0f} "
        "rows in the median run): the server sent it at most 200 a second and a count for the "
        "rest, and the page drew at most 100 a second and said how many it skipped.",
        "",
        "Reproduce: `.venv/bin/python bench/console.py "
        f"--repeats {args.repeats} --seconds {args.seconds:g}`",
        "",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "console.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
