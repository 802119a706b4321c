"""Plan operations need their scopes on both doors, tenants keep their own quarantine,
and alerts are checked, quarantined and replayed like events."""

from __future__ import annotations

from pathlib import Path

import grpc
import httpx
import pytest

from eventwire.api import (
    analytics_pb2_grpc,
    plans_pb2,
    plans_pb2_grpc,
    telemetry_pb2,
    telemetry_pb2_grpc,
)
from eventwire.testing import running_server
from tests.conftest import CHANNEL_OPTIONS
from tests.support.plans import event, serving, signup_plan
from tests.support.security import ACME, ACME_READER, GLOBEX, TOKENS, bearer, token, token_file_text

ADMIN = token("acme-admin")


async def test_apply_replay_discard_need_admin_and_quarantine_is_per_tenant(
    tmp_path: Path,
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(token_file_text({**TOKENS, ADMIN: ("acme", "admin,read,write")}))
    async with (
        running_server(auth_tokens=str(tokens)) as srv,
        grpc.aio.insecure_channel(srv.address, options=CHANNEL_OPTIONS) as channel,
        httpx.AsyncClient(base_url=f"http://{srv.http_address}") as http,
    ):
        plans = plans_pb2_grpc.PlansServiceStub(channel)
        document = signup_plan("quarantine")
        for tok in (ACME, ACME_READER):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await plans.ApplyPlan(
                    plans_pb2.ApplyPlanRequest(document=document), metadata=bearer(tok)
                )
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
            reply = await http.post(
                "/v1/quarantine:replay", json={}, headers={"authorization": f"Bearer {tok}"}
            )
            assert reply.status_code == 403
        applied = await plans.ApplyPlan(
            plans_pb2.ApplyPlanRequest(document=document), metadata=bearer(ADMIN)
        )
        assert applied.version == 1
        shown = await http.get("/v1/plans", headers={"authorization": f"Bearer {ACME_READER}"})
        assert shown.json()["version"] == "1"
        assert shown.json()["appliedBy"] == "acme"
        # acme's bad event is acme's quarantine, not globex's.
        analytics = analytics_pb2_grpc.AnalyticsServiceStub(channel)
        await analytics.TrackEvent(event("e1", "gold"), metadata=bearer(ACME))
        for tok, expected in ((ACME_READER, 1), (GLOBEX, 0)):
            listed = await plans.ListQuarantine(
                plans_pb2.ListQuarantineRequest(), metadata=bearer(tok)
            )
            assert listed.total == expected
        discarded = await plans.DiscardQuarantine(
            plans_pb2.DiscardQuarantineRequest(), metadata=bearer(ADMIN)
        )
        assert discarded.discarded == 1


ALERT_PLAN = """
format: 1
policies: {unplanned: accept, violations: quarantine}
alerts:
  overheat:
    attributes:
      type: object
      required: [zone]
      properties:
        zone: {type: string}
"""


async def test_alerts_are_quarantined_and_replayed(tmp_path: Path) -> None:
    async with serving(f"sqlite:///{tmp_path / 'e.db'}") as s:
        telemetry: telemetry_pb2_grpc.TelemetryServiceAsyncStub = s.telemetry
        await s.apply(ALERT_PLAN)
        held = await telemetry.ReportAlert(
            telemetry_pb2.AlertRequest(device_id="d1", alert_type="overheat")
        )
        assert held.outcome == 2  # analytics.OUTCOME_QUARANTINED
        assert held.violations
        kept = await telemetry.ReportAlert(
            telemetry_pb2.AlertRequest(
                device_id="d1", alert_type="overheat", attributes={"zone": "a"}
            )
        )
        assert kept.outcome == 1
        listed = await s.plans.ListQuarantine(plans_pb2.ListQuarantineRequest())
        assert [(g.kind, g.event_name, g.rule) for g in listed.groups] == [
            ("alert", "overheat", "required")
        ]
        await s.apply(ALERT_PLAN.replace("required: [zone]", "required: []"))
        replay = await s.plans.ReplayQuarantine(plans_pb2.ReplayQuarantineRequest())
        assert (replay.moved, replay.remaining) == (1, 0)
        alert = await telemetry.GetAlert(
            telemetry_pb2.GetAlertRequest(tracking_id=held.tracking_id)
        )
        assert alert.alert_type == "overheat"
