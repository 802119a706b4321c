"""docs/operations.md's metrics table is what a real server's /metrics exposes, both ways."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

import grpc
import httpx
from prometheus_client.parser import text_string_to_metric_families

from eventwire.api import analytics_pb2, analytics_pb2_grpc, telemetry_pb2, telemetry_pb2_grpc
from eventwire.testing import running_server
from tests.support.paths import ROOT

OPERATIONS: Final = ROOT / "docs" / "operations.md"
OURS: Final = ("eventwire_", "grpc_server_")
"""Families of these prefixes must all be documented; others (prometheus-client's
own) are documented by their prefix."""
_ROW: Final = re.compile(r"^\|\s*`([a-z_*]+)`\s*\|\s*([a-z]*)\s*\|")


def documented(markdown: str) -> set[str]:
    """The metric families the Metrics section's table names.

    A counter is documented as its samples' name (``x_total``) and exposed as
    the family ``x``; a name ending in ``*`` stands for a prefix.
    """
    section = ("\n" + markdown).partition("\n## Metrics\n")[2].partition("\n## ")[0]
    names: set[str] = set()
    for line in section.splitlines():
        row = _ROW.match(line)
        if row is not None:
            name, kind = row.groups()
            names.add(name.removesuffix("_total") if kind == "counter" else name)
    return names


def mismatches(documented: set[str], exposed: set[str]) -> list[str]:
    """What the table names that is not exposed, and what is exposed but undocumented."""
    prefixes = [name[:-1] for name in documented if name.endswith("*")]
    problems = [
        f"documented, not exposed: {name}"
        for name in sorted(documented)
        if not (
            any(family.startswith(name[:-1]) for family in exposed)
            if name.endswith("*")
            else name in exposed
        )
    ]
    problems += [
        f"exposed, not documented: {family}"
        for family in sorted(exposed)
        if family not in documented
        and (family.startswith(OURS) or not any(family.startswith(p) for p in prefixes))
    ]
    return problems


def exposed_families(text: str) -> set[str]:
    """The families in a scrape; a counter's ``x_created`` timestamp (which the
    text format cannot attach to ``x``) counts as part of ``x``."""
    families = {f.name: f.type for f in text_string_to_metric_families(text)}
    return {
        name
        for name in families
        if not (name.endswith("_created") and families.get(name[: -len("_created")]) == "counter")
    }


async def scrape_after_one_call_of_each_kind(tmp_path: Path) -> str:
    async with (
        running_server(store=f"sqlite:///{tmp_path / 'e.db'}") as srv,
        grpc.aio.insecure_channel(srv.address) as ch,
        httpx.AsyncClient() as http,
    ):
        analytics = analytics_pb2_grpc.AnalyticsServiceStub(ch)
        telemetry = telemetry_pb2_grpc.TelemetryServiceStub(ch)
        await analytics.TrackEvent(analytics_pb2.TrackEventRequest(event_name="unary"))
        await analytics.StreamEvents(iter([analytics_pb2.TrackEventRequest(event_name="s")]))
        await analytics.CountEvents(analytics_pb2.CountEventsRequest())
        ack = await telemetry.ReportAlert(telemetry_pb2.AlertRequest(device_id="d", alert_type="t"))
        await telemetry.GetAlert(telemetry_pb2.GetAlertRequest(tracking_id=ack.tracking_id))
        gateway = await http.post(
            f"http://{srv.http_address}/v1/events", json={"eventName": "http"}
        )
        assert gateway.status_code == 200, gateway.text
        reply = await http.get(f"http://127.0.0.1:{srv.metrics_port}/metrics")
        assert reply.status_code == 200
        return reply.text


async def test_every_family_exposed_is_documented_and_back(tmp_path: Path) -> None:
    text = await scrape_after_one_call_of_each_kind(tmp_path)
    exposed = exposed_families(text)
    table = documented(OPERATIONS.read_text(encoding="utf-8"))
    assert {"eventwire_events_stored", "grpc_server_handled", "process_*"} <= table
    assert mismatches(table, exposed) == []


def test_the_comparison_can_fail() -> None:
    table = {"eventwire_a", "grpc_server_b", "process_*", "eventwire_gone"}
    exposed = {"eventwire_a", "grpc_server_b", "process_cpu_seconds", "eventwire_new", "other_x"}
    assert mismatches(table, exposed) == [
        "documented, not exposed: eventwire_gone",
        "exposed, not documented: eventwire_new",
        "exposed, not documented: other_x",
    ]
    assert exposed_families(
        "# TYPE a_total counter\na_total 1\na_created 5\n# TYPE b_created gauge\nb_created 1\n"
    ) == {"a", "b_created"}
    assert documented("## Metrics\n| `x_total` | counter | | |\n| `y` | gauge | | |\n") == {
        "x",
        "y",
    }
