"""The generated tracking module: it passes ``mypy --strict``, its types catch a wrong
call, and events tracked through it, on a real server, conform to the plan.

mypy runs once for every file of a test (the generated modules and a user's code),
with its cache in the test's temporary directory, so a run takes seconds.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib.util
import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from eventwire.client import SyncTracker, Tracker, TrackerConfig
from eventwire.ingest.plan import ACCEPTED, PlanSpec, compile_plan, generate_python, parse_plan
from eventwire.testing import running_server
from tests.support.paths import ROOT

EXAMPLE = parse_plan((ROOT / "examples" / "tracking-plan.yaml").read_text())

# Every kind of property the generator types differently, and names it must rename.
RICH = parse_plan(
    textwrap.dedent(
        """
        name: shop
        policies: {unplanned: reject, violations: reject}
        events:
          Order Completed:
            description: An order was paid for.
            user_id: {minLength: 1}
            properties:
              type: object
              required: [order_id, total, items, currency]
              additionalProperties: false
              properties:
                order_id: {type: string, pattern: "^o-[0-9]+$"}
                total: {type: number, exclusiveMinimum: 0}
                items: {type: integer, minimum: 1, maximum: 100}
                currency: {enum: [EUR, USD]}
                coupon: {type: string, maxLength: 20}
                gift: {type: boolean}
                paid_at: {type: string, format: date-time}
                ship_on: {type: string, format: date}
                tier: {type: integer, enum: [1, 2, 3]}
                class: {description: a Python keyword as a property name}
                timestamp: {description: clashes with track()'s own argument}
          checkout-started:
            properties:
              properties:
                step: {type: integer, minimum: 1}
        """
    )
)


def write_module(tmp: Path, name: str, spec: PlanSpec) -> Path:
    path = tmp / f"{name}.py"
    path.write_text(generate_python(spec))
    return path


def mypy(tmp: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--cache-dir",
            str(tmp / ".mypy_cache"),
            "--no-error-summary",
            *(str(f) for f in files),
        ],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


USE = """
from __future__ import annotations

import datetime as dt

from eventwire.client import SyncTracker, Tracker

import shop_plan
import web_plan


def use(tracker: Tracker, sync: SyncTracker) -> list[str]:
    return [
        web_plan.track_signup(tracker, plan="pro"),
        web_plan.track_page_view(sync, path="/", user_id="u1", extra_properties={"ref": "x"}),
        shop_plan.track_order_completed(
            sync, user_id="u1", order_id="o-1", total=9.5, items=2, currency="EUR",
            gift=True, paid_at=dt.datetime.now(dt.UTC), ship_on=dt.date.today(), tier=3,
            class_="c", timestamp_="t", timestamp=dt.datetime.now(dt.UTC),
        ),
        shop_plan.track_checkout_started(tracker, step=1),
    ]
"""

MISUSE = """
from eventwire.client import Tracker

import shop_plan
import web_plan


def misuse(tracker: Tracker) -> None:
    web_plan.track_signup(tracker, plan="team")
    web_plan.track_page_view(tracker)
    shop_plan.track_order_completed(
        tracker, user_id="u", order_id="o-1", total=1, items="2", currency="EUR"
    )
    shop_plan.track_order_completed(
        tracker, order_id="o-1", total=1, items=2, currency="EUR"
    )
    shop_plan.track_checkout_started(tracker, step=1, bogus="x")
"""


def test_generated_modules_pass_mypy_strict_and_their_types_catch_mistakes(tmp_path: Path) -> None:
    web = write_module(tmp_path, "web_plan", EXAMPLE)
    shop = write_module(tmp_path, "shop_plan", RICH)
    use = tmp_path / "use.py"
    use.write_text(USE)
    checked = mypy(tmp_path, web, shop, use)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    misuse = tmp_path / "misuse.py"
    misuse.write_text(MISUSE)
    refused = mypy(tmp_path, misuse)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    lines = refused.stdout.splitlines()
    # One error per mistake, each on its own line of misuse.py.
    assert {int(line.split(":")[1]) for line in lines if line.startswith("misuse.py:")} == {
        9,
        10,
        12,
        14,
        17,
    }, refused.stdout
    assert "Literal['team']" in refused.stdout


def stored(db: Path) -> list[tuple[str, str, dict[str, str]]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT event_name, user_id, properties FROM events").fetchall()
    return [(name, user, json.loads(props)) for name, user, props in rows]


@pytest.mark.timeout(60)
async def test_events_tracked_through_the_module_conform_to_the_plan(tmp_path: Path) -> None:
    web = load(write_module(tmp_path, "web_plan_run", EXAMPLE))
    shop = load(write_module(tmp_path, "shop_plan_run", RICH))
    db = tmp_path / "events.db"
    paid = dt.datetime(2026, 12, 7, 14, 30, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    async with running_server(store=f"sqlite:///{db}") as srv:
        async with Tracker(srv.address, TrackerConfig(flush_interval=0.05)) as tracker:
            web.track_signup(tracker, plan="free", user_id="u1")
            web.track_page_view(tracker, path="/pricing", extra_properties={"ref": "ad"})
            shop.track_order_completed(
                tracker,
                user_id="u1",
                order_id="o-42",
                total=19.99,
                items=3,
                currency="USD",
                gift=False,
                paid_at=paid,
                ship_on=dt.date(2026, 12, 24),
                tier=2,
                class_="first",
                timestamp_="whatever",
            )
            shop.track_checkout_started(tracker, step=1)
            assert await tracker.flush(timeout=20)

        def sync_side() -> bool:
            with SyncTracker(srv.address, TrackerConfig(flush_interval=0.05)) as sync:
                shop.track_order_completed(
                    sync, user_id="u2", order_id="o-7", total=1e-3, items=100, currency="EUR"
                )
                web.track_signup(sync, plan="pro")
                return sync.flush(timeout=20)

        assert await asyncio.to_thread(sync_side)
    rows = stored(db)
    assert len(rows) == 6
    by_order = {p.get("order_id"): p for n, _, p in rows if n == "Order Completed"}
    assert by_order["o-42"] == {
        "order_id": "o-42",
        "total": "19.99",
        "items": "3",
        "currency": "USD",
        "gift": "false",
        "paid_at": "2026-12-07T13:30:00Z",
        "ship_on": "2026-12-24",
        "tier": "2",
        "class": "first",
        "timestamp": "whatever",
    }
    assert by_order["o-7"]["total"] == "0.001"
    plans = {"web": compile_plan(EXAMPLE), "shop": compile_plan(RICH)}
    for name, user_id, properties in rows:
        plan = plans["web"] if name in EXAMPLE.events else plans["shop"]
        assert plan.check_event(name, properties, user_id) is ACCEPTED, (name, properties)


def test_wrong_values_fail_at_the_call_not_on_the_server(tmp_path: Path) -> None:
    shop = load(write_module(tmp_path, "shop_plan_values", RICH))
    # No tracker is reached: each argument is converted before track() is called.
    args: dict[str, Any] = {"user_id": "u", "order_id": "o-1", "items": 1, "currency": "EUR"}
    with pytest.raises(ValueError, match="total must be finite"):
        shop.track_order_completed(None, total=float("nan"), **args)
    with pytest.raises(TypeError, match="items must be an int"):
        shop.track_order_completed(None, total=1, **{**args, "items": True})
    with pytest.raises(ValueError, match="paid_at must be timezone-aware"):
        shop.track_order_completed(None, total=1, paid_at=dt.datetime(2026, 1, 1), **args)
