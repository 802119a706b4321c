"""Quarantine, replay after a plan change (once), broken plans and replicas, on both stores."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import grpc
import pytest

from eventwire import _status
from eventwire.api import analytics_pb2, plans_pb2
from eventwire.runtime.cli import EXIT_OK, EXIT_REFUSED
from tests.support.paths import ROOT
from tests.support.plans import Served, event, plan_store, replica, serving, signup_plan

__all__ = ["plan_store"]  # a fixture

EXAMPLE = ROOT / "examples" / "tracking-plan.yaml"


async def cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "eventwire",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def _exported(s: Served) -> list[str]:
    export = s.analytics.ExportEvents(analytics_pb2.ExportEventsRequest())
    return [item.event.event_id async for item in export]


async def _queried(s: Served) -> int:
    reply = await s.analytics.QueryEvents(analytics_pb2.QueryEventsRequest())
    return sum(row.count for row in reply.rows)


async def test_example_plan_replay_once_and_discard_through_the_cli(
    plan_store: str, tmp_path: Path
) -> None:
    async with serving(plan_store) as s:
        target = ("--target", s.server.address)
        code, out, err = await cli("plans", "apply", str(EXAMPLE), *target)
        assert code == EXIT_OK, err
        assert "plan version 1 in force (applied)" in out
        code, out, _ = await cli("plans", "show", *target)
        assert code == EXIT_OK
        assert out.startswith("# version 1")
        # The example's rules: signup needs plan free|pro, page_view a path from /;
        # violations are quarantined, unplanned events accepted.
        await s.analytics.TrackEvent(event("s-ok", "pro"))
        await s.analytics.TrackEvent(event("s-gold", "gold"))
        await s.analytics.TrackEvent(event("s-none", None))
        page = analytics_pb2.TrackEventRequest(
            event_name="page_view", event_id="p-bad", properties={"path": "home"}
        )
        await s.analytics.TrackEvent(page)
        await s.analytics.TrackEvent(event("c-1", None, name="click"))
        assert await s.count() == 2  # s-ok and the unplanned click
        assert await _queried(s) == 2
        assert sorted(await _exported(s)) == ["c-1", "s-ok"]

        code, out, _ = await cli("quarantine", "list", "--json", *target)
        assert code == EXIT_OK
        listed = json.loads(out)
        assert listed["total"] == "3"
        groups = {(g["eventName"], g["rule"]): g for g in listed["groups"]}
        assert set(groups) == {("signup", "enum"), ("signup", "required"), ("page_view", "pattern")}
        assert groups["signup", "enum"]["samples"][0]["eventId"] == "s-gold"
        code, out, _ = await cli(
            "quarantine", "list", "--event", "signup", "--rule", "enum", *target
        )
        assert code == EXIT_OK
        assert out.startswith("1 quarantined")

        # Nothing conforms yet: a replay moves nothing.
        code, out, _ = await cli("quarantine", "replay", *target)
        assert code == EXIT_OK
        assert out.startswith("moved 0 ")

        # A plan that also allows gold: exactly s-gold conforms now, and moves once.
        widened = tmp_path / "widened.yaml"
        widened.write_text(EXAMPLE.read_text().replace("[free, pro]", "[free, pro, gold]"))
        code, out, _ = await cli("plans", "diff", str(widened), *target)
        assert code == EXIT_OK
        assert "against version 1" in out
        code, out, err = await cli("plans", "apply", str(widened), *target)
        assert code == EXIT_OK, err
        assert "plan version 2 in force" in out
        code, out, _ = await cli("quarantine", "replay", "--event", "signup", *target)
        assert code == EXIT_OK
        assert out.startswith("moved 1 (of which 0 already stored); 1 still violate plan version 2")
        code, out, _ = await cli("quarantine", "replay", *target)
        assert out.startswith("moved 0 ")
        assert await s.count("signup") == 2
        assert sorted(await _exported(s)) == ["c-1", "s-gold", "s-ok"]
        # The moved event kept its id: sending it again is a duplicate.
        again = await s.analytics.TrackEvent(event("s-gold", "gold"))
        assert again.duplicate

        code, out, _ = await cli("quarantine", "discard", "--event", "page_view", *target)
        assert (code, out.strip()) == (EXIT_OK, "discarded 1")
        assert await s.quarantined() == 1  # s-none, still missing its plan


async def test_codegen_from_the_plan_in_force(plan_store: str, tmp_path: Path) -> None:
    async with serving(plan_store) as s:
        target = ("--target", s.server.address)
        out_file = tmp_path / "tracking.py"
        code, _, err = await cli("plans", "codegen", "--python", str(out_file), *target)
        assert code == EXIT_REFUSED
        assert "no tracking plan" in err
        await s.apply(EXAMPLE.read_text())
        code, _, err = await cli("plans", "codegen", "--python", str(out_file), *target)
        assert code == EXIT_OK, err
        assert "def track_signup(" in out_file.read_text()


async def test_a_broken_plan_is_refused_and_the_old_one_stays(plan_store: str) -> None:
    async with serving(plan_store) as s:
        await s.apply(signup_plan("quarantine"))
        broken = signup_plan("quarantine").replace("type: string", "type: strin")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await s.apply(broken)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        fields = [f for f, _ in _status.field_violations(refused.value)]
        assert fields == ["document/events/signup/properties/properties/plan/type"], fields
        http = await s.http.post("/v1/plans", json={"document": "events: [1"})
        assert http.status_code == 400
        assert http.json()["details"][0]["fieldViolations"][0]["field"].startswith("document")
        plan = await s.plans.GetPlan(plans_pb2.GetPlanRequest())
        assert plan.version == 1
        reply = await s.analytics.TrackEvent(event("e1", "gold"))
        assert reply.outcome == analytics_pb2.OUTCOME_QUARANTINED
        assert reply.event_id == "e1"  # the quarantined event's own id, not its kind
        assert reply.plan_version == 1


async def _version_within(s: Served, version: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if s.server.plans.version == version:
            return True
        await asyncio.sleep(0.05)
    return s.server.plans.version == version


async def test_replicas_pick_up_a_new_version(plan_store: str) -> None:
    async with replica(plan_store) as a, replica(plan_store) as b:
        await a.apply(signup_plan("quarantine"))
        assert await _version_within(b, 1, 5.0)
        reply = await b.analytics.TrackEvent(event("e1", "gold"))
        assert reply.outcome == analytics_pb2.OUTCOME_QUARANTINED
        await b.apply(signup_plan("reject"))
        assert await _version_within(a, 2, 5.0)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await a.analytics.TrackEvent(event("e2", "gold"))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        # Both replicas see one quarantine, and replay it once between them.
        await a.apply(signup_plan("quarantine", plans="[free, pro, gold]"))
        assert await _version_within(b, 3, 5.0)
        replays = await asyncio.gather(
            a.plans.ReplayQuarantine(plans_pb2.ReplayQuarantineRequest()),
            b.plans.ReplayQuarantine(plans_pb2.ReplayQuarantineRequest()),
        )
        assert sum(r.moved for r in replays) == 1
        assert await a.count() == 1
