"""One awaitable face over the async clients or their blocking twins, for the read tests.

The servers run in the test's event loop, so everything blocking runs in a
worker thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import eventwire.client as ec

T = TypeVar("T")


class Readers:
    """An analytics and a telemetry client of one kind (``async`` or ``sync``)."""

    def __init__(self, mode: str, target: str, **options: Any) -> None:
        self.sync = mode == "sync"
        if self.sync:
            self.telemetry: Any = ec.SyncTelemetryClient(target, **options)
            self.analytics: Any = ec.SyncAnalyticsClient(target, **options)
        else:
            self.telemetry = ec.TelemetryClient(target, **options)
            self.analytics = ec.AnalyticsClient(target, **options)

    async def call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``method(*args, **kwargs)``, awaited or run in a thread."""
        if self.sync:
            return await asyncio.to_thread(method, *args, **kwargs)
        return await method(*args, **kwargs)

    async def all(self, iterable: Any) -> list[Any]:
        """Every item of an async or a blocking iterator."""
        if self.sync:
            return await asyncio.to_thread(list, iterable)
        return [item async for item in iterable]

    async def take(self, stream: Any, count: int) -> list[Any]:
        """The next ``count`` items of a stream."""
        if self.sync:
            return await asyncio.to_thread(lambda: [next(stream) for _ in range(count)])
        return [await anext(stream) for _ in range(count)]

    async def consume(
        self, stream: Any, received: list[Any], until: int | Callable[[], bool]
    ) -> None:
        """Read ``stream`` into ``received`` until it holds ``until`` messages (or
        ``until()`` says so after a message), then close it."""
        done: Callable[[], bool]
        if isinstance(until, int):
            count = until
            done = lambda: len(received) >= count  # noqa: E731
        else:
            done = until
        if self.sync:

            def loop() -> None:
                for message in stream:
                    received.append(message)
                    if done():
                        break

            await asyncio.to_thread(loop)
        else:
            async for message in stream:
                received.append(message)
                if done():
                    break
        await self.close_stream(stream)

    async def close_stream(self, stream: Any) -> None:
        if self.sync:
            await asyncio.to_thread(stream.close)
        else:
            await stream.aclose()

    async def close(self) -> None:
        if self.sync:
            self.telemetry.close()
            self.analytics.close()
        else:
            await self.telemetry.close()
            await self.analytics.close()


async def readers(mode: str) -> AsyncIterator[Callable[..., Readers]]:
    """Make Readers of the mode under test; close every one afterwards."""
    made: list[Readers] = []

    def make(target: str, **options: Any) -> Readers:
        made.append(Readers(mode, target, **options))
        return made[-1]

    yield make
    for r in made:
        await r.close()
