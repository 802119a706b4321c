"""bench/abuse.py's pure parts: its figures as harness records, and its table
drawn from results written before each part carried its own run header."""

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

GRPC = {
    "rss_before": 53304,
    "rss_after": 126880,
    "rss_peak": 126880,
    "p99_before": 0.0044,
    "p99_during": 0.0175,
    "legit_calls_during": 442,
    "legit_errors": ["StatusCode.CANCELLED: CANCELLED"],
    "ping_flood": {"pings": 2000, "pings_per_s": 92234},
    "rapid_reset": {"streams": 60000, "streams_per_s": 702345},
    "connection_flood": {"connections": 20, "connections_per_s": 10602},
    "outcomes": {
        "ping_flood": ["too_many_pings", "no goaway"],
        "rapid_reset": ["closed after 30000", "open after 30000"],
        "connection_flood": ["20 held 3s"],
    },
    "server_alive": True,
    "server_cpu_s": 1.5,
}


@pytest.fixture
def abuse(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    # The scripts import each other by bare name, as when run from bench/.
    monkeypatch.syspath_prepend(str(BENCH))
    names = ("_cpu", "_harness", "_http_abuse", "abuse")
    for name in names:
        sys.modules.pop(name, None)
    yield importlib.import_module("abuse")
    for name in names:
        sys.modules.pop(name, None)


def _run(abuse: ModuleType) -> Any:
    harness = sys.modules["_harness"]
    machine = {"cpu_model": "CPU X", "nproc": 2, "kernel": "6", "python": "3.11", "grpcio": "1"}
    return harness.Run("a" * 40, False, "2026-12-07T00:00:00Z", machine, "pinned", "bench/abuse.py")


def test_protocol_attacks_become_records_with_counted_outcomes(abuse: ModuleType) -> None:
    records = {r["scenario"]: r for r in abuse.grpc_records(_run(abuse), GRPC)}
    assert records["grpc ping flood"]["metrics"]["connections_goaway"] == 1
    assert records["grpc rapid reset"]["metrics"]["connections_closed"] == 1
    server = records["grpc server under the attacks"]
    assert server["metrics"]["legit_errors"] == 1
    assert server["metrics"]["legit_p99_during_ms"] == 17.5
    assert server["context"] == {"server_alive": True}
    lines = [sys.modules["_harness"].to_line(r) for r in records.values()]
    assert all(json.loads(line)["bench"] == "abuse" for line in lines)


def test_a_p99_over_no_calls_is_left_out_of_the_record(abuse: ModuleType) -> None:
    flood = {
        "trackevent_p99_ms": 6.8,
        "trackevent_calls": 363,
        "trackevent_errors": [],
        "health_p99_ms": float("inf"),
        "health_calls": 0,
        "health_errors": ["StatusCode.DEADLINE_EXCEEDED: x"],
        "attack": "10 streams reset",
        "server_cpu_s": 0.3,
    }
    (rec,) = abuse.floods_records(_run(abuse), {"Rapid Reset": flood}, 100)
    assert "health_p99_ms" not in rec["metrics"]
    assert rec["metrics"]["health_errors"] == 1
    assert rec["context"] == {"attack": "10 streams reset", "max_concurrent_streams": 100}


def test_results_from_before_the_harness_keep_their_machine_and_command(
    abuse: ModuleType,
) -> None:
    old = {
        **GRPC,
        "machine": "x86_64, 2 cores, Python 3.11.7, grpcio 1.85.1",
        "command": "python bench/abuse.py ",
        "http_command": "python bench/abuse.py --only http",
        "http": {},
    }
    result = abuse.upgrade(old)
    assert "machine" not in result
    assert abuse.machine_line(result, "http") == (
        "x86_64, 2 cores, Python 3.11.7, grpcio 1.85.1. `python bench/abuse.py --only http`"
    )
    result["runs"]["floods"] = _run(abuse).header()
    assert abuse.machine_line(result, "floods") == (
        "CPU X, 2 cores, Python 3.11, grpcio 1. `python bench/abuse.py`"
    )
