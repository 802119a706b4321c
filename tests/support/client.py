"""Fixtures running each client test twice: once with the async client, once with its sync twin.

The servers live in the test's event loop, so the sync client is driven from a
worker thread (``asyncio.to_thread``); tests talk to either through one
awaitable facade and assert the same behaviour.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from eventwire.client import (
    AnalyticsClient,
    SyncAnalyticsClient,
    SyncTelemetryClient,
    TelemetryClient,
)
from tests.support.scripted import ScriptedServer, scripted_server


class Facade:
    """Awaitable methods over an async client or a sync one run in a thread."""

    def __init__(self, client: Any, sync: bool) -> None:
        self.client = client
        self.sync = sync

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        method = getattr(self.client, name)
        if self.sync:

            async def threaded(*args: Any, **kwargs: Any) -> Any:
                return await asyncio.to_thread(method, *args, **kwargs)

            return threaded
        return method  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        if self.sync:
            await asyncio.to_thread(self.client.close)
        else:
            await self.client.close()


Factory = Callable[..., Facade]


@pytest.fixture(params=["async", "sync"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def _clients(mode: str, async_cls: Any, sync_cls: Any) -> AsyncIterator[Factory]:
    """Make clients of the mode under test; close every one afterwards."""
    made: list[Facade] = []

    def make(target: str, **kwargs: Any) -> Facade:
        cls = sync_cls if mode == "sync" else async_cls
        facade = Facade(cls(target, **kwargs), mode == "sync")
        made.append(facade)
        return facade

    yield make
    for facade in made:
        await facade.aclose()


@pytest.fixture
async def analytics_client(mode: str) -> AsyncIterator[Factory]:
    async for make in _clients(mode, AnalyticsClient, SyncAnalyticsClient):
        yield make


@pytest.fixture
async def telemetry_client(mode: str) -> AsyncIterator[Factory]:
    async for make in _clients(mode, TelemetryClient, SyncTelemetryClient):
        yield make


@pytest.fixture
async def scripted() -> AsyncIterator[ScriptedServer]:
    async with scripted_server() as srv:
        yield srv
