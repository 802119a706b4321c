"""``eventwire top``: the maths exactly, and the real command against a real server."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import grpc

from eventwire.api import analytics_pb2, analytics_pb2_grpc
from eventwire.testing import running_server


async def test_top_shows_a_real_servers_figures(tmp_path: Path) -> None:
    async with (
        running_server(store=f"sqlite:///{tmp_path / 'e.db'}") as srv,
        grpc.aio.insecure_channel(srv.address) as ch,
    ):
        stub = analytics_pb2_grpc.AnalyticsServiceStub(ch)
        for i in range(12):
            await stub.TrackEvent(analytics_pb2.TrackEventRequest(event_name="t", event_id=f"t{i}"))
        await stub.TrackEvent(analytics_pb2.TrackEventRequest(event_name="t", event_id="t0"))
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "eventwire",
            "top",
            "--target",
            f"127.0.0.1:{srv.metrics_port}",
            "--interval",
            "0.2",
            "--iterations",
            "1",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    screen = out.decode()
    assert "stored 12" in screen
    assert "duplicates 1" in screen
    assert "TrackEvent" in screen
    assert "storage up" in screen
    assert "errors since start: none" in screen


async def test_top_says_when_it_cannot_reach_the_server() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "eventwire",
        "top",
        "--target",
        "127.0.0.1:9",
        "--iterations",
        "1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 3
    assert "cannot read http://127.0.0.1:9/metrics" in out.decode()
