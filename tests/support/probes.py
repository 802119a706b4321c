"""Waiting for a condition, and asking a server's grpc.health.v1 how it is."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVING: Final = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING: Final = health_pb2.HealthCheckResponse.NOT_SERVING


async def poll(condition: Callable[[], Awaitable[bool]], what: str, timeout: float = 15.0) -> None:
    """Wait until ``condition()`` is true, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def health(channel: grpc.aio.Channel, service: str = "") -> int:
    """The status ``Check`` reports for ``service`` (the whole server by default)."""
    # grpcio-health-checking's stubs are typed for sync channels only.
    stub: Any = health_pb2_grpc.HealthStub(channel)
    reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    status: int = reply.status
    return status
