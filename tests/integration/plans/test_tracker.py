"""The Tracker reports what the tracking plan made of its events: counts, one log line a kind."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from eventwire.client import Tracker, TrackerConfig
from eventwire.testing import running_server
from tests.support.plans import signup_plan


async def test_quarantined_events_are_counted_and_each_kind_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "events.db"
    caplog.set_level(logging.WARNING, logger="eventwire.client")
    async with running_server(store=f"sqlite:///{db}") as srv:
        srv_plans = srv.plans
        await srv_plans.apply(signup_plan("quarantine"), "test", "")
        async with Tracker(srv.address, TrackerConfig(flush_interval=30)) as tracker:
            for i in range(30):
                tracker.track("signup", user_id=f"u{i}", properties={"plan": "gold"})
                tracker.track("signup", user_id=f"u{i}", properties={})
                tracker.track("signup", user_id=f"u{i}", properties={"plan": "pro"})
            assert await tracker.flush(timeout=20)
            stats = tracker.stats
    assert (stats.accepted, stats.quarantined, stats.acked, stats.rejected) == (30, 60, 90, 0)
    assert stats.tracked == stats.acked + stats.outstanding + stats.dropped
    lines = [r.getMessage() for r in caplog.records if "tracking plan" in r.getMessage()]
    # Two kinds (a value outside the enum, a missing property), each logged once.
    assert len(lines) == 2, lines
    assert any("properties.plan" in line and "[enum]" in line for line in lines), lines
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 30
        held = conn.execute("SELECT count(*) FROM eventwire_quarantine").fetchone()[0]
        assert held == 60
        versions = {v for (v,) in conn.execute("SELECT DISTINCT plan_version FROM events")}
        assert versions == {1}
