"""The seeds are the baseline: their method names and text; no .proto is read at run time."""

from __future__ import annotations

import pytest

from eventwire.api import analytics_pb2, telemetry_pb2
from tests.support.paths import ROOT, SEEDS


def test_nothing_loads_proto_files_at_run_time() -> None:
    source = ROOT / "src" / "eventwire"
    offenders = [
        p
        for p in source.rglob("*.py")
        if "protos_and_services" in p.read_text() or "grpc.protos(" in p.read_text()
    ]
    assert offenders == []


def test_full_method_names_are_the_seeds() -> None:
    analytics = analytics_pb2.DESCRIPTOR.services_by_name["AnalyticsService"]
    telemetry = telemetry_pb2.DESCRIPTOR.services_by_name["TelemetryService"]
    names = {f"/{analytics.full_name}/{m.name}" for m in analytics.methods} | {
        f"/{telemetry.full_name}/{m.name}" for m in telemetry.methods
    }
    assert {
        "/analytics.AnalyticsService/TrackEvent",
        "/analytics.AnalyticsService/StreamEvents",
        "/telemetry.TelemetryService/ReportAlert",
    } <= names


@pytest.mark.parametrize("name", ["analytics.proto", "telemetry.proto"])
def test_seed_baselines_are_the_documents_text(name: str) -> None:
    # The baseline files must keep saying what the design documents say.
    text = (SEEDS / name).read_text()
    assert 'syntax = "proto3";' in text
    assert f"package {name.removesuffix('.proto')};" in text
