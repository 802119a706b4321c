"""The pure parts of the benchmark harness (bench/_harness.py, bench/_cpu.py, bench/compare.py):
CPU accounting from ``/proc/<pid>/stat`` text, the record shape, and comparing revisions."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"

# A real line of /proc/<pid>/stat, with a command name holding a space and a ')'.
STAT = (
    "4242 (py thon) x) S 1 4242 4242 0 -1 4194560 5000 0 0 0 "
    "1234 567 8 9 20 0 7 0 39128 3133440 386 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17"
)


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, ModuleType]]:
    # The scripts import each other by bare name, as when run from bench/; their
    # generic names leave sys.modules again after the test.
    monkeypatch.syspath_prepend(str(BENCH))
    names = ("_cpu", "_harness", "compare")
    for name in names:
        sys.modules.pop(name, None)
    yield {name: importlib.import_module(name) for name in names}
    for name in names:
        sys.modules.pop(name, None)


def _run(harness: ModuleType, **changes: Any) -> Any:
    fields = {
        "revision": "a" * 40,
        "dirty": False,
        "date": "2026-12-07T05:40:00Z",
        "machine": {"cpu_model": "Example CPU", "nproc": 2},
        "pinning": "server on CPU 0, load on CPU 1",
        "command": "bench/targets.py --repeats 1",
    } | changes
    return harness.Run(**fields)


def test_stat_ticks_are_utime_plus_stime_past_an_awkward_command_name(
    bench: dict[str, ModuleType],
) -> None:
    assert bench["_cpu"].stat_ticks(STAT) == 1234 + 567


def test_stat_ticks_ignore_the_childrens_waited_for_time(bench: dict[str, ModuleType]) -> None:
    # cutime/cstime (fields 16-17) count reaped children only; live workers are summed by pid.
    other = STAT.replace("1234 567 8 9", "1234 567 800 900")
    assert bench["_cpu"].stat_ticks(other) == bench["_cpu"].stat_ticks(STAT)


def test_cpu_per_request_in_microseconds(bench: dict[str, ModuleType]) -> None:
    cpu = bench["_cpu"]
    # 180 ticks of 10 ms over 9,000 answered requests: 200 us each.
    assert cpu.per_request_us(180 * 0.01, 9000) == pytest.approx(200.0)
    assert cpu.per_request_us(1.5, 0) == 0.0


def test_a_record_carries_revision_machine_bench_scenario_and_metrics(
    bench: dict[str, ModuleType],
) -> None:
    harness = bench["_harness"]
    rec = harness.record(
        _run(harness), "targets", "U1", {"ratio": 0.76, "cpu_us": 212}, store="sqlite"
    )
    line = harness.to_line(rec)
    assert "\n" not in line
    parsed = json.loads(line)
    assert list(parsed)[: len(harness.RECORD_KEYS)] == list(harness.RECORD_KEYS)
    assert parsed["revision"] == "a" * 40
    assert parsed["machine"]["cpu_model"] == "Example CPU"
    assert parsed["bench"] == "targets"
    assert parsed["scenario"] == "U1"
    assert parsed["metrics"] == {"ratio": 0.76, "cpu_us": 212}
    assert parsed["context"] == {"store": "sqlite"}
    assert parsed["command"] == "bench/targets.py --repeats 1"
    assert harness.read_history(line + "\n\n" + line) == [parsed, parsed]


@pytest.mark.parametrize("value", ["12", None, True, [1]])
def test_a_metric_must_be_a_number(bench: dict[str, ModuleType], value: object) -> None:
    harness = bench["_harness"]
    with pytest.raises(TypeError, match="rate"):
        harness.record(_run(harness), "reads", "live", {"rate": value})


def test_a_record_needs_a_bench_and_a_scenario(bench: dict[str, ModuleType]) -> None:
    harness = bench["_harness"]
    with pytest.raises(ValueError, match="scenario"):
        harness.record(_run(harness), "reads", "", {"rate": 1.0})
    with pytest.raises(ValueError, match="metrics"):
        harness.to_line({"bench": "reads", "scenario": "live"})


def test_publish_appends_and_never_rewrites(
    bench: dict[str, ModuleType], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = bench["_harness"]
    monkeypatch.setattr(harness, "ROOT", tmp_path)
    history = tmp_path / "results" / "history.jsonl"
    first = harness.record(_run(harness), "reads", "live", {"p99_ms": 9.1})
    second = harness.record(_run(harness, revision="b" * 40), "reads", "live", {"p99_ms": 8.0})
    assert harness.publish([first], history) == 1
    assert harness.publish([second], history) == 1
    assert [r["revision"][0] for r in harness.read_history(history.read_text())] == ["a", "b"]


def test_the_numeric_and_the_descriptive_parts_of_a_result(bench: dict[str, ModuleType]) -> None:
    harness = bench["_harness"]
    cell = {"store": "sqlite", "p99_ms": 9.1, "deliveries": 1000, "ok": True}
    assert harness.numbers(cell) == {"p99_ms": 9.1, "deliveries": 1000}
    assert harness.strings(cell) == {"store": "sqlite", "ok": True}


def test_cpu_model_from_cpuinfo_text(bench: dict[str, ModuleType]) -> None:
    cpuinfo = "processor\t: 0\nvendor_id\t: X\nmodel name\t: Example CPU @ 2.0GHz\n"
    assert bench["_harness"].cpu_model(cpuinfo) == "Example CPU @ 2.0GHz"


def test_pinning_says_where_things_run_and_prefixes_taskset(bench: dict[str, ModuleType]) -> None:
    harness = bench["_harness"]
    pin = harness.Pinning("0", "1")
    assert pin.server(["python", "-m", "eventwire"]) == [
        "taskset",
        "-c",
        "0",
        "python",
        "-m",
        "eventwire",
    ]
    assert pin.load(["h2load"]) == ["taskset", "-c", "1", "h2load"]
    assert "CPU 0" in pin.describe()
    assert "CPU 1" in pin.describe()
    loose = harness.Pinning(None, None)
    assert loose.server(["h2load"]) == ["h2load"]
    assert loose.launcher() == []
    assert "NOT pinned" in loose.describe()


def test_compare_takes_the_median_per_revision_and_the_ratio(
    bench: dict[str, ModuleType],
) -> None:
    harness, compare = bench["_harness"], bench["compare"]
    base, new = _run(harness, revision="1111aaaa"), _run(harness, revision="2222bbbb")
    records = [
        harness.record(base, "targets", "U1", {"rate": 100.0, "cpu_us": 200.0}),
        harness.record(base, "targets", "U1", {"rate": 300.0, "cpu_us": 200.0}),
        harness.record(base, "targets", "U1", {"rate": 200.0, "cpu_us": 200.0}),
        harness.record(new, "targets", "U1", {"rate": 100.0, "cpu_us": 0.0}),
        harness.record(new, "targets", "B1", {"rate": 5.0}),  # the base never measured B1
        harness.record(new, "reads", "live", {"rate": 1.0}),
    ]
    rows = compare.compare(records, "1111", "2222", bench="targets")
    assert [(r.scenario, r.metric) for r in rows] == [("U1", "cpu_us"), ("U1", "rate")]
    assert rows[1].base == 200.0
    assert rows[1].ratio == pytest.approx(0.5)
    assert rows[0].ratio == 0.0
    assert compare.latest_revision(records) == "2222bbbb"
    assert "0.50x" in compare.table(rows, "1111", "2222")
