from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from eventwire.api import analytics_pb2_grpc, telemetry_pb2_grpc
from eventwire.server.app import Server
from eventwire.testing import running_server

# Our own retries are the only retries: grpcio's would hide what the server said.
CHANNEL_OPTIONS = (("grpc.enable_retries", 0),)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'events.db'}"


@pytest.fixture
async def server(db_url: str) -> AsyncIterator[Server]:
    async with running_server(store=db_url) as srv:
        yield srv


@pytest.fixture
async def channel(server: Server) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(server.address, options=CHANNEL_OPTIONS) as ch:
        yield ch


@pytest.fixture
def analytics(channel: grpc.aio.Channel) -> analytics_pb2_grpc.AnalyticsServiceAsyncStub:
    return analytics_pb2_grpc.AnalyticsServiceStub(channel)


@pytest.fixture
def telemetry(channel: grpc.aio.Channel) -> telemetry_pb2_grpc.TelemetryServiceAsyncStub:
    return telemetry_pb2_grpc.TelemetryServiceStub(channel)
