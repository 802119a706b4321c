"""A known dataset for the read RPCs, and a server on SQLite or PostgreSQL to read it from."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import grpc
import pytest

from eventwire.api import analytics_pb2, analytics_pb2_grpc, telemetry_pb2, telemetry_pb2_grpc
from eventwire.runtime.server import Server
from eventwire.testing import running_server

DAY: Final = 1_749_945_600_000
"""2025-06-15T00:00:00Z."""
HOUR: Final = 3_600_000

# (hour, name, user, plan) of every event in DATASET.
_EVENTS: Final = [
    (0, "signup", "u1", "pro"),
    (0, "signup", "u2", "pro"),
    (0, "signup", "u1", "free"),
    (0, "view", "u1", ""),
    (0, "view", "", ""),
    (5, "signup", "u3", "pro"),
    (5, "view", "u1", "free"),
    (5, "view", "u2", "free"),
    (5, "view", "u3", ""),
    (5, "view", "u4", ""),
]
HOURLY_BY_NAME: Final = [
    (DAY, "signup", 3, 2),
    (DAY, "view", 2, 1),
    (DAY + 5 * HOUR, "view", 4, 4),
    (DAY + 5 * HOUR, "signup", 1, 1),
]
"""(bucket_start, group, count, distinct_users) of QueryEvents(hour, event_name)."""
BY_PLAN: Final = [(0, "", 4, 3), (0, "free", 3, 2), (0, "pro", 3, 3)]
"""The same for QueryEvents(BUCKET_NONE, properties.plan)."""


def dataset() -> list[analytics_pb2.TrackEventRequest]:
    return [
        analytics_pb2.TrackEventRequest(
            event_name=name,
            user_id=user,
            timestamp=DAY + hour * HOUR + n,
            properties={"plan": plan} if plan else {},
            event_id=f"ev-{n:02d}",
        )
        for n, (hour, name, user, plan) in enumerate(_EVENTS)
    ]


@pytest.fixture(params=["sqlite", "postgres"])
def read_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'events.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
async def read_server(read_store: str) -> AsyncIterator[Server]:
    async with running_server(store=read_store) as srv:
        yield srv


class Stubs:
    def __init__(self, channel: grpc.aio.Channel, metadata: Any = None) -> None:
        self.analytics = analytics_pb2_grpc.AnalyticsServiceStub(channel)
        self.telemetry = telemetry_pb2_grpc.TelemetryServiceStub(channel)
        self.md = metadata

    async def alert(self, device: str = "d1", **fields: Any) -> str:
        reply = await self.telemetry.ReportAlert(
            telemetry_pb2.AlertRequest(device_id=device, alert_type="smoke", **fields),
            metadata=self.md,
            timeout=5,
        )
        return reply.tracking_id

    async def take(
        self, call: grpc.aio.UnaryStreamCall[Any, telemetry_pb2.Alert], count: int
    ) -> list[telemetry_pb2.Alert]:
        """The next ``count`` alerts of a watch."""
        out: list[telemetry_pb2.Alert] = []
        while len(out) < count:
            message = await call.read()
            assert isinstance(message, telemetry_pb2.Alert)
            out.append(message)
        return out


@pytest.fixture
async def stubs(read_server: Server) -> AsyncIterator[Stubs]:
    async with grpc.aio.insecure_channel(read_server.address) as ch:
        yield Stubs(ch)
