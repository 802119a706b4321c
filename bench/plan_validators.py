"""Tracking-plan validators on the batch path: 1,000 events against a plan of 50 event schemas.

Which JSON Schema library checks events (issue 24): ``jsonschema-rs`` (Rust,
locked), ``jsonschema`` (pure Python) and ``fastjsonschema`` (compiles a schema
to Python source). Every candidate checks the same decoded instances (the
string-typing step of :mod:`eventwire.ingest.plan.wire` is shared and timed
apart), so the rows compare the libraries alone; then the whole
``CompiledPlan.check_event`` (decode + jsonschema-rs + verdict) and two
alternatives to decoding: translating the types into string patterns, which
cannot express ``minimum``, and no check at all.

The candidates other than jsonschema-rs are not in the lock; install them
beside it, not into the project's environment, and put them on the path:

    pip install --target /tmp/plan-cands jsonschema fastjsonschema rfc3339-validator
    PYTHONPATH=/tmp/plan-cands .venv/bin/python bench/plan_validators.py

A missing candidate is skipped and said so. Times are per event: wall µs
(median round) and CPU µs (``process_time`` over the same rounds). The last
table times ``(a+)+$`` on ``"a" * n + "!"``, the catastrophic-backtracking
case, in each library.
"""

from __future__ import annotations

import argparse
import importlib
import json
import random
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from _harness import Run, numbers, publish, record

from eventwire.ingest.plan import compile_plan, parse_plan
from eventwire.ingest.plan.engine import build_validator
from eventwire.ingest.plan.wire import DECODERS

RESULTS = Path(__file__).parent / "results"
IN_PROCESS = "in process, not pinned (one process times every candidate in turn)"
PLANS = 50
BATCH = 1000

Check = Callable[[Any], bool]


def plan_document(events: int) -> dict[str, Any]:
    """``events`` schemas of the shapes real plans have: enums, patterns, numbers, dates."""
    out: dict[str, Any] = {}
    for i in range(events):
        out[f"event_{i}"] = {
            "properties": {
                "type": "object",
                "required": ["plan", "path", "count"],
                "properties": {
                    "plan": {"type": "string", "enum": ["free", "pro", "team", f"tier{i}"]},
                    "path": {"type": "string", "pattern": "^/[a-z0-9/_-]*$", "maxLength": 200},
                    "count": {"type": "integer", "minimum": 0, "maximum": 1_000_000},
                    "price": {"type": "number", "exclusiveMinimum": 0},
                    "trial": {"type": "boolean"},
                    "at": {"type": "string", "format": "date-time"},
                    "ref": {"type": "string", "minLength": 1, "maxLength": 64},
                },
                "additionalProperties": i % 2 == 0,
            }
        }
    return {"policies": {"violations": "quarantine"}, "events": out}


def batch(events: int, size: int, bad_every: int) -> list[tuple[str, dict[str, str]]]:
    rng = random.Random(24)  # noqa: S311 - benchmark data
    out = []
    for n in range(size):
        i = rng.randrange(events)
        props = {
            "plan": "pro",
            "path": f"/shop/item-{n % 97}",
            "count": str(n % 500),
            "price": "19.99",
            "trial": "false",
            "at": "2026-12-07T13:00:00Z",
            "ref": f"campaign-{n % 13}",
        }
        if bad_every and n % bad_every == 0:
            props["plan"] = "enterprise"
        out.append((f"event_{i}", props))
    return out


def _jsonschema_rs(schema: Mapping[str, Any]) -> Check:
    return build_validator(schema).is_valid


def _jsonschema(schema: Mapping[str, Any]) -> Check:
    jsonschema = importlib.import_module("jsonschema")
    cls = jsonschema.Draft202012Validator
    return cls(schema, format_checker=cls.FORMAT_CHECKER).is_valid  # type: ignore[no-any-return]


def _fastjsonschema(schema: Mapping[str, Any]) -> Check:
    fastjsonschema = importlib.import_module("fastjsonschema")
    # Draft 7 is the newest it knows; the keywords plans use mean the same there.
    validate = fastjsonschema.compile(
        {**schema, "$schema": "http://json-schema.org/draft-07/schema#"}
    )
    error = fastjsonschema.JsonSchemaValueException

    def check(instance: Any) -> bool:
        try:
            validate(instance)
        except error:
            return False
        return True

    return check


CANDIDATES: Mapping[str, tuple[str, Callable[[Mapping[str, Any]], Check]]] = {
    "jsonschema-rs": ("jsonschema_rs", _jsonschema_rs),
    "fastjsonschema": ("fastjsonschema", _fastjsonschema),
    "jsonschema": ("jsonschema", _jsonschema),
}


def version(module: str) -> str | None:
    try:
        from importlib.metadata import version as dist_version

        importlib.import_module(module)
        return dist_version(module.replace("_", "-"))
    except ImportError:
        return None
    except Exception:  # noqa: BLE001 - a module without distribution metadata still runs
        return "?"


def timed(work: Callable[[], int], rounds: int) -> tuple[float, float, int]:
    """Median wall µs per event, CPU µs per event over all rounds, and the last result."""
    walls, cpu, result = [], 0.0, 0
    for _ in range(rounds):
        c0, w0 = time.process_time(), time.perf_counter()
        result = work()
        walls.append(time.perf_counter() - w0)
        cpu += time.process_time() - c0
    return statistics.median(walls) * 1e6 / BATCH, cpu * 1e6 / (BATCH * rounds), result


def run(rounds: int, bad_every: int) -> list[dict[str, Any]]:
    document = plan_document(PLANS)
    spec = parse_plan(json.dumps(document))
    events = batch(PLANS, BATCH, bad_every)
    schemas = {name: e.properties for name, e in spec.events.items()}
    decoders = {
        name: [(f.key, DECODERS[f.type]) for f in e.fields if f.type in DECODERS]
        for name, e in spec.events.items()
    }

    def decoded(name: str, props: Mapping[str, str]) -> dict[str, Any]:
        """The typed instance the plan's schema describes (booleans decoded too)."""
        instance: dict[str, Any] = dict(props)
        for key, decode in decoders[name]:
            if key in instance:
                instance[key] = decode(instance[key])
        return instance

    instances = [(name, decoded(name, props)) for name, props in events]
    rows: list[dict[str, Any]] = []

    def add(name: str, work: Callable[[], int], note: str) -> None:
        wall, cpu, valid = timed(work, rounds)
        rows.append(
            {
                "candidate": name,
                "us_per_event": round(wall, 3),
                "cpu_us_per_event": round(cpu, 3),
                "events_per_s": round(1e6 / wall),
                "valid": valid,
                "note": note,
            }
        )

    for label, (module, make) in CANDIDATES.items():
        found = version(module)
        if found is None:
            print(f"skipped {label}: not installed (see the module docstring)", file=sys.stderr)
            continue
        checks = {name: make(schema) for name, schema in schemas.items()}
        add(
            f"{label} {found}",
            lambda c=checks: sum(c[n](i) for n, i in instances),
            "is_valid on decoded instances",
        )

    add(
        "decode only",
        lambda: sum(len(decoded(n, p)) > 0 for n, p in events),
        "wire strings -> typed dict (every non-string type)",
    )
    plan = compile_plan(spec)
    add(
        "CompiledPlan.check_event",
        lambda: sum(not plan.check_event(n, p, "u").violations for n, p in events),
        "decode + jsonschema-rs + verdict (+ errors of the bad ones)",
    )
    as_strings = {name: build_validator(_stringly(schema)) for name, schema in schemas.items()}
    add(
        "jsonschema-rs, types as patterns",
        lambda: sum(as_strings[n].is_valid(dict(p)) for n, p in events),
        "no decoding; cannot express minimum/maximum",
    )
    add("no plan (dict copy)", lambda: sum(len(dict(p)) > 0 for _, p in events), "the floor")
    return rows


def _stringly(schema: Mapping[str, Any]) -> dict[str, Any]:
    patterns = {
        "integer": "^-?(0|[1-9][0-9]*)$",
        "number": "^-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?$",
        "boolean": "^(true|false)$",
    }
    props = {}
    for key, sub in schema["properties"].items():
        kind = sub.get("type", "string")
        if kind == "string":
            props[key] = dict(sub)
        else:
            props[key] = {"type": "string", "pattern": patterns[kind]}
    return {**schema, "properties": props}


def backtracking(sizes: list[int]) -> list[dict[str, Any]]:
    rows = []
    for label, (module, make) in CANDIDATES.items():
        if version(module) is None:
            continue
        check = make({"type": "string", "pattern": "(a+)+$"})
        for n in sizes:
            text = "a" * n + "!"
            began = time.perf_counter()
            check(text)
            rows.append(
                {"candidate": label, "n": n, "ms": round((time.perf_counter() - began) * 1e3, 3)}
            )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument(
        "--bad-every", type=int, default=20, help="every Nth event breaks its enum (0: none)"
    )
    parser.add_argument("--backtrack", default="16,20,22", help="sizes n for (a+)+$ on 'a'*n+'!'")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    this = Run.now(IN_PROCESS)
    m = this.machine
    rows = run(args.rounds, args.bad_every)
    floor = next(r for r in rows if r["candidate"].startswith("no plan"))["us_per_event"]
    lines = [
        f"{BATCH:,} events, plan of {PLANS} event schemas, 1 in {args.bad_every or 'no'} event "
        f"invalid, {args.rounds} rounds",
        "",
        "| candidate | µs/event (median) | CPU µs/event | events/s | valid | note |",
        "|---|---|---|---|---|---|",
        *(
            f"| {r['candidate']} | {r['us_per_event']} | {r['cpu_us_per_event']} | "
            f"{r['events_per_s']:,} | {r['valid']} | {r['note']} |"
            for r in rows
        ),
        "",
        f"The floor (copying each properties map, which any check needs) is {floor} µs/event.",
        "",
    ]
    sizes = [int(s) for s in args.backtrack.split(",") if s]
    if sizes:
        trap = backtracking(sizes)
        lines += [
            "`(a+)+$` on `'a' * n + '!'`, ms for one check:",
            "",
            "| library | " + " | ".join(f"n={n}" for n in sizes) + " |",
            "|---|" + "---|" * len(sizes),
            *(
                f"| {lib} | "
                + " | ".join(str(r["ms"]) for r in trap if r["candidate"] == lib)
                + " |"
                for lib in dict.fromkeys(r["candidate"] for r in trap)
            ),
            "",
        ]
    lines += [
        f"{m['cpu_model']}, {m['nproc']} cores, Python {m['python']}. "
        f"`python bench/plan_validators.py {' '.join(sys.argv[1:])}`".rstrip(),
        "",
    ]
    print("\n".join(lines))
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        publish(record(this, "plan_validators", r["candidate"], numbers(r)) for r in rows)
        (RESULTS / "plan_validators.md").write_text("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
