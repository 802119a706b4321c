"""A quarantined event reaches no destination until it is replayed; then it does, once."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from eventwire.api import plans_pb2
from eventwire.testing import no_backoff
from tests.support.plans import event, serving, signup_plan
from tests.support.webhook_receiver import WebhookReceiver

SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()


def delivered(receiver: WebhookReceiver) -> list[str]:
    return [e["id"] for r in receiver.answered(204) for e in r.json()["data"]]


async def test_quarantined_events_reach_a_destination_only_once_replayed(tmp_path: Path) -> None:
    with no_backoff():
        async with WebhookReceiver() as receiver:
            hook = f"hook={receiver.url}?secret={SECRET}&batch=10"
            async with serving(f"sqlite:///{tmp_path / 'e.db'}", destinations=(hook,)) as s:
                await s.apply(signup_plan("quarantine"))
                for ev in (event("ok-1", "pro"), event("held", "gold"), event("ok-2", "free")):
                    await s.analytics.TrackEvent(ev)
                await receiver.wait_for(lambda r: len(delivered(r)) >= 2)
                # Committed after the held one: had it been relayed, it would be here.
                await s.analytics.TrackEvent(event("ok-3", "pro"))
                await receiver.wait_for(lambda r: "ok-3" in delivered(r))
                assert sorted(delivered(receiver)) == ["ok-1", "ok-2", "ok-3"]
                await s.apply(signup_plan("quarantine", plans="[free, pro, gold]"))
                replay = await s.plans.ReplayQuarantine(plans_pb2.ReplayQuarantineRequest())
                assert replay.moved == 1
                await receiver.wait_for(lambda r: "held" in delivered(r))
                assert sorted(delivered(receiver)) == ["held", "ok-1", "ok-2", "ok-3"]
