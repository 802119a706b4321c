"""Turn ``bench/results/bench.json`` into the Markdown table, the chart and the README section.

    .venv/bin/python bench/report.py [bench/results/bench.json]

``bench/run.py`` calls this at the end of a run; run it alone to regenerate the
README's Performance section (between its generated-section markers) from the
recorded results without measuring again. The chart is an SVG (no plotting
library is a dependency) and a PNG drawn by a tiny zlib encoder below.
"""

from __future__ import annotations

import json
import struct
import sys
import zlib
from pathlib import Path
from typing import Any, Final, NamedTuple

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
ORDER = (
    "eventwire",
    "eventwire/normal",
    "eventwire/full",
    "eventwire-sync",
    "grpc-aio",
    "grpc-sync",
    "fastapi",
    "starlette",
    "raw-asgi",
)
LABELS = {
    "eventwire": "**eventwire** (grpc.aio + uvloop, durable)",
    "eventwire/normal": "eventwire, synchronous=normal",
    "eventwire/full": "eventwire, synchronous=full",
    "eventwire-sync": "eventwire work on grpcio sync server, 4 threads (prototype)",
    "grpc-aio": "bare grpcio aio + uvloop (parse, reply; no storage)",
    "grpc-sync": "bare grpcio sync server, 4 threads (parse, reply; no storage)",
    "fastapi": "FastAPI + uvicorn (durable, same pipeline)",
    "starlette": "Starlette + uvicorn (durable, same pipeline)",
    "raw-asgi": "raw ASGI + orjson (durable, same pipeline)",
}


def _cell(summary: dict[str, Any], workload: str, contender: str, metric: str) -> Any:
    return summary.get(workload, {}).get(contender, {}).get(metric)


def _fmt(stat: Any, unit: str = "", digits: int = 0) -> str:
    if not stat:
        return "—"

    def num(x: float) -> str:
        return f"{x:,.{digits}f}"

    if stat["min"] == stat["max"]:
        return f"{num(stat['median'])}{unit}"
    return f"{num(stat['median'])}{unit} ({num(stat['min'])}{DASH}{num(stat['max'])})"


def _median(summary: dict[str, Any], workload: str, contender: str, metric: str) -> float:
    stat = _cell(summary, workload, contender, metric)
    return float(stat["median"]) if stat else 0.0


X = "\u00d7"  # multiplication sign
DASH = "\u2013"  # en dash, for ranges


class Target(NamedTuple):
    id: str
    text: str
    value: float
    goal: float
    unit: str
    detail: str
    lower_is_better: bool = False


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    s = result["summary"]
    ew_unary = _median(s, "unary-grpc-64", "eventwire", "rps")
    best_bare = max((_median(s, "unary-grpc-64", c, "rps"), c) for c in ("grpc-aio", "grpc-sync"))
    fastapi = _median(s, "unary-http-64", "fastapi", "rps")
    batch = _median(s, "batch-grpc", "eventwire", "events_per_s")
    raw_batch = _median(s, "batch-http", "raw-asgi", "events_per_s")
    p99_half = _median(s, "unary-grpc-50pct", "eventwire", "p99_ms")
    w1 = _median(s, "unary-grpc-64", "eventwire-w1", "rps")
    w2 = _median(s, "unary-grpc-64", "eventwire-w2", "rps")
    bw1 = _median(s, "batch-grpc", "eventwire-w1", "events_per_s")
    bw2 = _median(s, "batch-grpc", "eventwire-w2", "events_per_s")
    soak = result.get("soak") or {}

    def ratio(a: float, b: float) -> float:
        return a / b if b else 0.0

    rows: list[Target] = [
        Target("P1", f"unary TrackEvent >= 1.0{X} best bare Python gRPC ({best_bare[1]})",
               ratio(ew_unary, best_bare[0]), 1.0, X,
               f"{ew_unary:,.0f} vs {best_bare[0]:,.0f} req/s"),
        Target("P1", f"unary TrackEvent >= 1.2{X} FastAPI one-event POST",
               ratio(ew_unary, fastapi), 1.2, X, f"{ew_unary:,.0f} vs {fastapi:,.0f} req/s"),
        Target("P2", "batched durable ingest >= 250,000 events/s on one core",
               batch, 250_000, " ev/s", f"{batch:,.0f} events/s"),
        Target("P2", f"batched ingest >= 40{X} FastAPI one-event POST",
               ratio(batch, fastapi), 40.0, X, f"{batch:,.0f} ev/s vs {fastapi:,.0f} req/s"),
        Target("P2", f"batched ingest >= 1{X} raw-ASGI JSON batch endpoint",
               ratio(batch, raw_batch), 1.0, X, f"{batch:,.0f} vs {raw_batch:,.0f} events/s"),
        Target("P3", "p99 <= 5 ms at 50 % of max unary load",
               p99_half, 5.0, " ms", f"p99 {p99_half:.2f} ms", lower_is_better=True),
        Target("P3", f"--workers 2 >= 1.6{X} --workers 1 (unary)",
               ratio(w2, w1), 1.6, X, f"{w2:,.0f} vs {w1:,.0f} req/s"),
        Target("P3", f"--workers 2 >= 1.6{X} --workers 1 (batched)",
               ratio(bw2, bw1), 1.6, X, f"{bw2:,.0f} vs {bw1:,.0f} events/s"),
    ]  # fmt: skip
    if soak:
        rows.append(
            Target("P4", f"RSS flat (+-10 %) over a {soak['seconds']:.0f} s soak",
                   abs(soak["rss_max_drift_pct"]), 10.0, " %",
                   f"{soak['rss_start_mib']:.1f} -> {soak['rss_end_mib']:.1f} MiB (max drift "
                   f"{soak['rss_max_drift_pct']:+.1f} %); fds {soak['fds_start']:.0f} -> "
                   f"{soak['fds_end']:.0f}; threads {soak['threads_start']:.0f} -> "
                   f"{soak['threads_end']:.0f}", lower_is_better=True)
        )  # fmt: skip
    out = []
    for row in rows:
        measured = row.value > 0
        met = row.value <= row.goal if row.lower_is_better else row.value >= row.goal
        out.append(
            {
                "id": row.id,
                "target": row.text,
                "value": row.value,
                "goal": row.goal,
                "unit": row.unit,
                "detail": row.detail,
                "met": met if measured else None,
            }
        )
    return out


def markdown(result: dict[str, Any]) -> str:
    s = result["summary"]
    machine = result["machine"]
    settings = result["settings"]
    contenders = [c for c in ORDER if any(c in w for w in s.values())]
    lines = [
        f"Measured {result['when']} with `{result['command']}` ({result['wall_seconds']} s): "
        f"{machine['cpus']} CPUs ({machine['cpu_model']}), Python {machine['python']}, "
        f"grpcio {result['tools']['grpcio']}, {result['tools']['h2load']}, "
        f"{result['tools']['wrk']}. Server pinned to CPU {settings['server_cpu']}, load "
        f"generator to CPU {settings['client_cpu']}; {settings['repeats']} interleaved repeats "
        f"of {settings['duration_s']:g} s, median (min{DASH}max). SQLite "
        f"`synchronous={settings['sqlite_synchronous']}` for every durable server.",
        "",
        "| server | gRPC unary req/s, 64 in flight | p99 ms | gRPC unary req/s, 1 in flight "
        "| HTTP POST req/s, 64 conns | p99 ms | HTTP req/s, 1 conn | 1k-event batches, ev/s "
        "| JSON batches, ev/s | p99 ms at 50 % load |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines.extend(
        "| "
        + " | ".join(
            [
                LABELS.get(c, c),
                _fmt(_cell(s, "unary-grpc-64", c, "rps")),
                _fmt(_cell(s, "unary-grpc-64", c, "p99_ms"), digits=1),
                _fmt(_cell(s, "unary-grpc-1", c, "rps")),
                _fmt(_cell(s, "unary-http-64", c, "rps")),
                _fmt(_cell(s, "unary-http-64", c, "p99_ms"), digits=1),
                _fmt(_cell(s, "unary-http-1", c, "rps")),
                _fmt(_cell(s, "batch-grpc", c, "events_per_s")),
                _fmt(_cell(s, "batch-http", c, "events_per_s")),
                _fmt(_cell(s, "unary-grpc-50pct", c, "p99_ms"), digits=2),
            ]
        )
        + " |"
        for c in contenders
    )
    workers = [c for c in ("eventwire-w1", "eventwire-w2") if c in s.get("batch-grpc", {})]
    if workers:
        lines += [
            "",
            "`--workers` (servers may use every CPU; the load generator shares CPU "
            f"{settings['client_cpu']} with them):",
            "",
            "| workers | gRPC unary req/s, 64 in flight | 1k-event batches, ev/s |",
            "|---|---|---|",
        ]
        for c in workers:
            lines.append(
                f"| {c[-1]} | {_fmt(_cell(s, 'unary-grpc-64', c, 'rps'))} | "
                f"{_fmt(_cell(s, 'batch-grpc', c, 'events_per_s'))} |"
            )
    lines += ["", "Targets (issue 6):", "", "| | target | measured | met |", "|---|---|---|---|"]
    for t in targets(result):
        value = f"{t['value']:,.2f}{t['unit']}" if t["value"] < 1000 else f"{t['value']:,.0f}"
        met = {True: "yes", False: "**no**", None: "not measured"}[t["met"]]
        lines.append(f"| {t['id']} | {t['target']} | {value} ({t['detail']}) | {met} |")
    if result.get("notes"):
        lines += ["", "Notes:", ""] + [f"- {n}" for n in result["notes"]]
    if result.get("profiles"):
        lines += ["", "Profiles: " + ", ".join(f"`{p}`" for p in result["profiles"])]
    return "\n".join(lines) + "\n"


# -- chart ----------------------------------------------------------------------------

BARS = (
    ("unary-grpc-64", "rps", "gRPC unary req/s (64 in flight)"),
    ("unary-http-64", "rps", "HTTP one-event POST req/s (64 conns)"),
    ("batch-grpc", "events_per_s", "1k-event batches, events/s"),
)
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def _series(result: dict[str, Any]) -> list[tuple[str, list[tuple[str, float, float, float]]]]:
    s = result["summary"]
    out = []
    for workload, metric, title in BARS:
        bars = []
        for c in ORDER:
            stat = _cell(s, workload, c, metric)
            if stat:
                bars.append((c, stat["median"], stat["min"], stat["max"]))
        if bars:
            out.append((title, bars))
    return out


def svg(result: dict[str, Any]) -> str:
    panels = _series(result)
    width, row, left = 900, 22, 190
    height = sum(40 + row * len(bars) for _, bars in panels) + 20
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]
    y = 10
    for title, bars in panels:
        parts.append(f'<text x="10" y="{y + 16}" font-weight="bold">{title}</text>')
        y += 28
        top = max(b[3] for b in bars) or 1.0
        scale = (width - left - 110) / top
        for i, (name, median, low, high) in enumerate(bars):
            color = COLORS[ORDER.index(name) % len(COLORS)]
            parts.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end">{name}</text>')
            parts.append(
                f'<rect x="{left}" y="{y + 3}" width="{median * scale:.1f}" height="{row - 6}" '
                f'fill="{color}"/>'
            )
            parts.append(
                f'<line x1="{left + low * scale:.1f}" x2="{left + high * scale:.1f}" '
                f'y1="{y + row / 2}" y2="{y + row / 2}" stroke="black"/>'
            )
            parts.append(
                f'<text x="{left + high * scale + 6:.1f}" y="{y + 14}">{median:,.0f}</text>'
            )
            y += row
            del i
        y += 12
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


# A 3x5 pixel font: enough for labels made of letters, digits and a few signs.
_FONT = {
    "0": "111101101101111", "1": "010110010010111", "2": "111001111100111",
    "3": "111001111001111", "4": "101101111001001", "5": "111100111001111",
    "6": "111100111101111", "7": "111001001001001", "8": "111101111101111",
    "9": "111101111001111", "a": "010101111101101", "b": "110101110101110",
    "c": "011100100100011", "d": "110101101101110", "e": "111100110100111",
    "f": "111100110100100", "g": "011100101101011", "h": "101101111101101",
    "i": "111010010010111", "j": "001001001101010", "k": "101101110101101",
    "l": "100100100100111", "m": "101111111101101", "n": "110101101101101",
    "o": "010101101101010", "p": "110101110100100", "q": "010101101110011",
    "r": "110101110101101", "s": "011100010001110", "t": "111010010010010",
    "u": "101101101101111", "v": "101101101101010", "w": "101101111111101",
    "x": "101101010101101", "y": "101101010010010", "z": "111001010100111",
    "-": "000000111000000", "/": "001001010100100", ",": "000000000010100",
    ".": "000000000000010", " ": "000000000000000", "(": "010100100100010",
    ")": "010001001001010", "%": "101001010100101", "k_": "000000000000000",
}  # fmt: skip


def png(result: dict[str, Any]) -> bytes:
    """The SVG's bars as a PNG: a raster drawn by hand and encoded with zlib."""
    panels = _series(result)
    scale_px, row, left, width = 2, 18, 200, 900
    height = sum(30 + row * len(bars) for _, bars in panels) + 20
    pixels = bytearray(b"\xff" * (width * height * 3))

    def rect(x0: int, y0: int, w: int, h: int, rgb: tuple[int, int, int]) -> None:
        for yy in range(max(0, y0), min(height, y0 + h)):
            start = (yy * width + max(0, x0)) * 3
            end = (yy * width + min(width, x0 + w)) * 3
            pixels[start:end] = bytes(rgb) * ((end - start) // 3)

    def text(x: int, y: int, value: str) -> None:
        for ch in value.lower():
            glyph = _FONT.get(ch, _FONT[" "])
            for i, bit in enumerate(glyph):
                if bit == "1":
                    rect(
                        x + (i % 3) * scale_px,
                        y + (i // 3) * scale_px,
                        scale_px,
                        scale_px,
                        (0, 0, 0),
                    )
            x += 4 * scale_px

    y = 8
    for title, bars in panels:
        text(10, y + 4, title)
        y += 24
        top = max(b[3] for b in bars) or 1.0
        scale = (width - left - 110) / top
        for name, median, low, high in bars:
            color = COLORS[ORDER.index(name) % len(COLORS)].lstrip("#")
            rgb = (int(color[0:2], 16), int(color[2:4], 16), int(color[4:6], 16))
            text(left - 8 - len(name) * 4 * scale_px, y + 3, name)
            rect(left, y + 2, int(median * scale), row - 5, rgb)
            rect(
                left + int(low * scale),
                y + row // 2 - 1,
                max(1, int((high - low) * scale)),
                2,
                (0, 0, 0),
            )
            text(left + int(high * scale) + 6, y + 3, f"{median:,.0f}")
            y += row
        y += 6
    raw = b"".join(
        b"\x00" + bytes(pixels[r * width * 3 : (r + 1) * width * 3]) for r in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


# -- the README's Performance section --------------------------------------------------------------

READING = """\
### Reading the seeds' "up to 10{x} over JSON/HTTP" claim

- **Per event, batched, it holds**: 1,000-event `TrackEvents` calls store
  {batch_ratio:.0f}{x} as many events per second as FastAPI stores one-event POSTs
  ({batch:,.0f} vs {fastapi:,.0f}/s), and {raw_ratio:.2f}{x} a hand-written raw-ASGI JSON
  batch endpoint on the same pipeline ({raw_batch:,.0f}/s).
- **Per call, unary, it does not**: in Python the RPC machinery costs the time, not the
  encoding. Durable unary `TrackEvent` runs at {ew_unary:,.0f} req/s: {vs_fastapi:.2f}{x}
  FastAPI, {vs_starlette:.2f}{x} Starlette, and {vs_bare:.2f}{x} a bare grpcio server that
  stores nothing ({bare:,.0f} req/s, {bare_name}). The seeds' 10{x} is a Go (grpc-go)
  number: issue 6 measured grpc-go at ~64,000 unary req/s on this machine class.
- So: send events in batches (the Tracker does); per event, one Python core then stores
  {per_core} with every acknowledgement durable.
{c1}"""

C1_READING = (
    "- **On the HTTP door, where the transport is the same, protobuf wins per event, and a\n"
    "  little per call** (C1: one server, both doors, `bench/targets.py --only C1`):\n"
    "  1,000-event batches as Connect `TrackEvents` in binary protobuf take\n"
    "  {cb_cpu:.1f} µs of server CPU per event against {jb_cpu:.1f} for the JSON batch route\n"
    "  ({b_cpu:.2f}{x}; {b_rate:.2f}{x} the events/s), since decoding is most of a batched\n"
    "  event's work; a unary `TrackEvent` takes {cu_cpu:.0f} against {ju_cpu:.0f} µs\n"
    "  ({u_cpu:.2f}{x}; {u_rate:.2f}{x} the req/s), since per call HTTP, the gateway's checks\n"
    "  and the durable commit cost the same through either door.\n"
)


def _c1_reading() -> str:
    """C1's bullet, from targets.json when it ran C1, else from the C1 run of issue 25."""
    for name in ("targets.json", "targets-c1.json"):
        path = BENCH / "results" / name
        if not path.is_file():
            continue
        rows = {
            (t["ours"]["workload"], t["metric"]): t
            for t in json.loads(path.read_text())["targets"]
            if t["id"] == "C1" and t["ratio"]
        }
        unary, cpu = rows.get(("connect-unary", "rate")), rows.get(("connect-unary", "cpu_us"))
        batch = rows.get(("connect-batch", "rate"))
        if unary and cpu and batch:
            return C1_READING.format(
                x=X,
                cb_cpu=batch["ours_cpu_us"]["median"],
                jb_cpu=batch["ref_cpu_us"]["median"],
                b_cpu=batch["ours_cpu_us"]["median"] / batch["ref_cpu_us"]["median"],
                b_rate=batch["ratio"]["median"],
                cu_cpu=cpu["ours_cpu_us"]["median"],
                ju_cpu=cpu["ref_cpu_us"]["median"],
                u_cpu=cpu["ratio"]["median"],
                u_rate=unary["ratio"]["median"],
            )
    return ""


def performance_md(result: dict[str, Any]) -> str:
    s = result["summary"]

    def m(workload: str, c: str, metric: str = "rps") -> float:
        return _median(s, workload, c, metric)

    bare_name, bare = max(
        (
            ("grpc-aio", m("unary-grpc-64", "grpc-aio")),
            ("grpc-sync", m("unary-grpc-64", "grpc-sync")),
        ),
        key=lambda kv: kv[1],
    )
    ew_unary = m("unary-grpc-64", "eventwire")
    fastapi = m("unary-http-64", "fastapi")
    batch = m("batch-grpc", "eventwire", "events_per_s")
    raw_batch = m("batch-http", "raw-asgi", "events_per_s")

    def r(a: float, b: float) -> float:
        return a / b if b else 0.0

    reading = READING.format(
        c1=_c1_reading(),
        x=X,
        per_core=f"~{batch:,.0f} events/s" if batch else "n/a",
        batch_ratio=r(batch, fastapi),
        batch=batch,
        fastapi=fastapi,
        raw_ratio=r(batch, raw_batch),
        raw_batch=raw_batch,
        ew_unary=ew_unary,
        vs_fastapi=r(ew_unary, fastapi),
        vs_starlette=r(ew_unary, m("unary-http-64", "starlette")),
        vs_bare=r(ew_unary, bare),
        bare=bare,
        bare_name=bare_name,
    )
    targets_json = BENCH / "results" / "targets.json"
    targets = ""
    if targets_json.is_file():
        targets = "### Targets (issue 16)\n\n" + targets_md(json.loads(targets_json.read_text()))
    return (
        "## Performance\n\n"
        "Reproduce with `make bench` (~10 minutes): `bench/targets.py` measures the targets "
        "below, then `bench/run.py --quick` the broad comparison after them.\n\n"
        + (targets + "\n" if targets else "")
        + "### eventwire beside bare Python servers\n\n"
        + markdown(result)
        + "\n![throughput](bench/results/bench.svg)\n\n"
        + reading
        + _notes()
    )


# -- bench/targets.py's table ---------------------------------------------------------


def _num(value: float, unit: str = "") -> str:
    return f"{value:,.0f}{unit}" if value >= 100 else f"{value:,.2f}{unit}"


def targets_md(result: dict[str, Any]) -> str:
    """bench/results/targets.json as Markdown: one row per target, ratios within a repeat."""
    machine, settings = result["machine"], result["settings"]
    lines = [
        f"Measured {result['when']} with `{result['command']}` ({result['wall_seconds']} s): "
        f"{machine['cpus']} CPUs ({machine['cpu_model']}), Python {machine['python']}, grpcio "
        f"{machine['grpcio']}; {settings['pinning']}. {settings['repeats']} repeats of "
        f"{settings['duration_s']:g} s, every server started afresh, in an order rotated and "
        "reversed between repeats; the ratio is eventwire / reference within a repeat, "
        f"median (min{DASH}max). CPU is the server's µs per call (per event for B1): utime + "
        "stime of all its processes over the window, divided by what it answered.",
        "",
        "| | target | eventwire | reference | ratio | CPU µs, eventwire / ref | goal | met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in result["targets"]:
        ratio = t["ratio"]
        cpu = (
            f"{_num(t['ours_cpu_us'].get('median', 0))} / {_num(t['ref_cpu_us'].get('median', 0))}"
        )
        if t["metric"] == "cpu_us":
            ours, ref = (f"{_num(t[k].get('median', 0))} µs" for k in ("ours_cpu_us", "ref_cpu_us"))
        else:
            ours, ref = (
                f"{_num(t[k].get('median', 0))} {t['unit']}" for k in ("ours_rate", "ref_rate")
            )
        if t["ours_spans_per_call"]:
            ours += f", {t['ours_spans_per_call']['median']:.2f} spans/call"
        cell = "not measured"
        if ratio:
            cell = f"{ratio['median']:.2f}{X} ({ratio['min']:.2f}{DASH}{ratio['max']:.2f})"
            if t["id"] == "T1":
                cell += f", cost {1 - ratio['median']:.1%}"
        goal = f"{'≥' if t['at_least'] else '≤'} {t['goal']:.2f}{X}"
        if t["id"] == "T1":
            goal = f"cost ≤ {1 - t['goal']:.0%}"
        met = {True: "met", False: "**not met**", None: "not measured"}[t["met"]]
        lines.append(
            f"| {t['id']} | {t['label']} | {ours} | {ref} | {cell} | {cpu} | {goal} | {met} |"
        )
    batch = next((t for t in result["targets"] if t["id"] == "B1"), None)
    if batch and batch["ours_rate"]:
        lines += ["", f"B1 stretch, 250,000 durable events/s on one core: "
                  f"{batch['ours_rate']['median']:,.0f} ({batch['ours_rate']['min']:,.0f}"
                  f"{DASH}{batch['ours_rate']['max']:,.0f})."]  # fmt: skip
    lines += [
        "",
        "References: bare grpc.aio = `bench/_servers.py grpc-aio` on uvloop (parses, replies, "
        "stores nothing); raw-ASGI JSON = `bench/ref_json_batch.py` (same schema, one "
        f"`synchronous={settings['sqlite_synchronous']}` transaction per batch); baseline = "
        f"eventwire at `{settings['baseline_rev']}` on this .venv. eventwire runs its defaults "
        "(durable SQLite) unless the row says otherwise.",
    ]
    if result.get("notes"):
        lines += ["", "Notes: " + "; ".join(result["notes"]) + "."]
    if result.get("profiles"):
        lines += ["", "Profiles: " + ", ".join(f"`{p}`" for p in result["profiles"])]
    return "\n".join(lines) + "\n"


def write_targets(result: dict[str, Any], out: Path, *, readme: bool = True) -> None:
    """The Markdown beside ``out`` (targets.json: targets.md), and the README's
    Performance section again (it shows the targets) when ``readme``."""
    text = "# Targets (issue 16)\n\n" + targets_md(result)
    if readme and (out.parent / "targets-rounds.md").is_file():
        text += (
            "\nEarlier single-target rounds, before and after each lever: "
            "[targets-rounds.md](targets-rounds.md).\n"
        )
    out.with_suffix(".md").write_text(text)
    bench_json = out.parent / "bench.json"
    if readme and bench_json.is_file():
        readme = ROOT / "README.md"
        section = performance_md(json.loads(bench_json.read_text()))
        readme.write_text(with_performance(readme.read_text(), section))


def _notes() -> str:
    """A pointer to the hand-written analysis (bench/notes.md): the README is a
    front page, and the notes grow with every lever measured."""
    if not (BENCH / "notes.md").is_file():
        return ""
    return (
        "\nWhat the numbers mean, where the time goes and every lever measured (kept or "
        "dropped, with its figure): [bench/notes.md](bench/notes.md).\n"
    )


START: Final = "<!-- performance: generated by bench/report.py from bench/results/bench.json -->"
END: Final = "<!-- performance: end -->"


def with_performance(readme: str, section: str) -> str:
    """``readme`` with its Performance section replaced by ``section`` (added if missing)."""
    block = f"{START}\n{section.rstrip()}\n{END}\n"
    if START in readme and END in readme:
        head, _, rest = readme.partition(START)
        _, _, tail = rest.partition(END)
        return head + block + tail.lstrip("\n")
    return readme.rstrip() + "\n\n" + block


def write_all(result: dict[str, Any], out_dir: Path, console: Any = None) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench.md").write_text(markdown(result))
    (out_dir / "bench.svg").write_text(svg(result))
    (out_dir / "bench.png").write_bytes(png(result))
    readme = ROOT / "README.md"
    readme.write_text(with_performance(readme.read_text(), performance_md(result)))
    message = f"wrote {out_dir / 'bench.md'}, bench.svg, bench.png and README.md's Performance"
    if console is not None:
        console.print(message)
        console.print(markdown(result))
    else:
        print(message)


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else BENCH / "results" / "bench.json"
    result = json.loads(path.read_text())
    write_all(result, path.parent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
