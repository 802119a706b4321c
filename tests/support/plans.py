"""Servers with a tracking plan, on SQLite and on PostgreSQL, and the stubs to talk to them."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from eventwire.api import (
    analytics_pb2,
    analytics_pb2_grpc,
    plans_pb2,
    plans_pb2_grpc,
    telemetry_pb2_grpc,
)
from eventwire.config import ServerConfig
from eventwire.runtime.server import Server
from eventwire.store import open_store
from eventwire.testing import running_server
from tests.conftest import CHANNEL_OPTIONS

SIGNUP_PLAN = """
format: 1
policies:
  unplanned: accept
  violations: {policy}
events:
  signup:
    properties:
      type: object
      required: [plan]
      properties:
        plan:
          type: string
          enum: [free, pro]
"""
"""A plan whose violations get ``policy``: ``signup`` needs ``plan`` free or pro."""


def signup_plan(policy: str, *, plans: str = "[free, pro]") -> str:
    return SIGNUP_PLAN.format(policy=policy).replace("[free, pro]", plans)


def event(event_id: str, plan: str | None = "pro", name: str = "signup") -> Any:
    properties = {} if plan is None else {"plan": plan}
    return analytics_pb2.TrackEventRequest(
        event_name=name, user_id="u1", event_id=event_id, properties=properties
    )


@pytest.fixture(params=["sqlite", "postgres"])
def plan_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'events.db'}"
    return str(request.getfixturevalue("pg_url"))


@dataclass
class Served:
    server: Server
    channel: grpc.aio.Channel
    analytics: analytics_pb2_grpc.AnalyticsServiceAsyncStub
    telemetry: telemetry_pb2_grpc.TelemetryServiceAsyncStub
    plans: plans_pb2_grpc.PlansServiceAsyncStub
    http: httpx.AsyncClient

    async def apply(self, document: str) -> plans_pb2.ApplyPlanResponse:
        return await self.plans.ApplyPlan(plans_pb2.ApplyPlanRequest(document=document))

    async def count(self, name: str = "") -> int:
        reply = await self.analytics.CountEvents(analytics_pb2.CountEventsRequest(event_name=name))
        return reply.count

    async def quarantined(self, name: str = "") -> int:
        reply = await self.plans.ListQuarantine(
            plans_pb2.ListQuarantineRequest(filter=plans_pb2.QuarantineFilter(event_name=name))
        )
        return reply.total


@asynccontextmanager
async def serving(store: str, **overrides: Any) -> AsyncIterator[Served]:
    async with (
        running_server(store=store, **overrides) as server,
        grpc.aio.insecure_channel(server.address, options=CHANNEL_OPTIONS) as channel,
        httpx.AsyncClient(base_url=f"http://{server.http_address}", timeout=10) as http,
    ):
        yield Served(
            server,
            channel,
            analytics_pb2_grpc.AnalyticsServiceStub(channel),
            telemetry_pb2_grpc.TelemetryServiceStub(channel),
            plans_pb2_grpc.PlansServiceStub(channel),
            http,
        )


@asynccontextmanager
async def replica(store: str) -> AsyncIterator[Served]:
    """A server on ``store`` that shares it with others (as ``--workers`` processes do
    on one SQLite file, or replicas on one PostgreSQL)."""
    config = dataclasses.replace(
        ServerConfig(),
        address="127.0.0.1:0",
        http_address="127.0.0.1:0",
        metrics_address="",
        store=store,
        grace=1.0,
    )
    server = Server(config, store=open_store(store, exclusive=False))
    await server.start()
    try:
        async with (
            grpc.aio.insecure_channel(server.address, options=CHANNEL_OPTIONS) as channel,
            httpx.AsyncClient(base_url=f"http://{server.http_address}", timeout=10) as http,
        ):
            yield Served(
                server,
                channel,
                analytics_pb2_grpc.AnalyticsServiceStub(channel),
                telemetry_pb2_grpc.TelemetryServiceStub(channel),
                plans_pb2_grpc.PlansServiceStub(channel),
                http,
            )
    finally:
        await server.stop()
