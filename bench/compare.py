"""Compare two revisions' benchmark records from ``bench/results/history.jsonl``.

    .venv/bin/python bench/compare.py BASE NEW [--bench targets] [--history PATH]

``BASE`` and ``NEW`` are commit prefixes as recorded (``git rev-parse`` output);
``NEW`` defaults to the newest revision in the history. For every benchmark,
scenario and metric both revisions measured, it prints the two values (the
median when a revision was measured more than once) and NEW / BASE. Revisions
measured from a dirty tree (uncommitted code) are named under the table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from _harness import HISTORY, read_history


class Row(NamedTuple):
    bench: str
    scenario: str
    metric: str
    base: float
    new: float
    ratio: float | None  # None when the base is 0


def _matches(record: Mapping[str, Any], rev: str) -> bool:
    return bool(rev) and str(record.get("revision", "")).startswith(rev)


def _medians(records: Iterable[Mapping[str, Any]], rev: str) -> dict[tuple[str, str, str], float]:
    values: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for rec in records:
        if _matches(rec, rev):
            for metric, value in rec["metrics"].items():
                values[(rec["bench"], rec["scenario"], metric)].append(float(value))
    return {key: statistics.median(v) for key, v in values.items()}


def compare(
    records: Iterable[Mapping[str, Any]], base: str, new: str, bench: str = ""
) -> list[Row]:
    """Every metric both revisions measured, sorted by bench, scenario and metric."""
    kept = [r for r in records if not bench or r["bench"] == bench]
    a, b = _medians(kept, base), _medians(kept, new)
    return [
        Row(*key, a[key], b[key], b[key] / a[key] if a[key] else None)
        for key in sorted(a.keys() & b.keys())
    ]


def latest_revision(records: Iterable[Mapping[str, Any]]) -> str:
    """The revision of the newest record (the later line wins a tie: the file only grows)."""
    newest: Mapping[str, Any] | None = None
    for rec in records:
        if newest is None or str(rec.get("date", "")) >= str(newest.get("date", "")):
            newest = rec
    return str(newest["revision"]) if newest else ""


def _num(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def table(rows: list[Row], base: str, new: str) -> str:
    out = [
        f"| bench | scenario | metric | {base[:10]} | {new[:10]} | new / base |",
        "|---|---|---|--:|--:|--:|",
    ]
    out += [
        f"| {r.bench} | {r.scenario} | {r.metric} | {_num(r.base)} | {_num(r.new)} | "
        f"{'-' if r.ratio is None else f'{r.ratio:.2f}x'} |"
        for r in rows
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("base")
    parser.add_argument("new", nargs="?", default="")
    parser.add_argument("--bench", default="", help="only this benchmark")
    parser.add_argument("--history", type=Path, default=HISTORY)
    args = parser.parse_args(argv)
    records = read_history(args.history.read_text(encoding="utf-8"))
    new = args.new or latest_revision(records)
    rows = compare(records, args.base, new, args.bench)
    if not rows:
        print(f"no metric measured by both {args.base} and {new}", file=sys.stderr)
        return 1
    dirty = {
        str(r["revision"])[:10]
        for r in records
        if r.get("dirty") and (_matches(r, args.base) or _matches(r, new))
    }
    print(table(rows, args.base, new))
    if dirty:
        print(f"\n* measured with uncommitted changes: {', '.join(sorted(dirty))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
