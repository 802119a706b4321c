from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import TracerProvider

from eventwire.config import ServerConfig
from eventwire.runtime.server import Server


@asynccontextmanager
async def running_server(
    traces: TracerProvider | None = None, **overrides: Any
) -> AsyncIterator[Server]:
    """A real eventwire server in this event loop, on a free loopback port.

    Storage defaults to a SQLite file in a fresh temporary directory, removed
    afterwards; pass ``store=...`` to use your own. Other keyword arguments are
    :class:`ServerConfig` fields; ``traces`` is a tracer provider of your own
    (e.g. with an in-memory exporter). The server is drained and stopped on exit.
    """
    with tempfile.TemporaryDirectory(prefix="eventwire-") as tmp:
        defaults: dict[str, Any] = {
            "address": "127.0.0.1:0",
            "http_address": "127.0.0.1:0",
            "metrics_address": "127.0.0.1:0",
            "store": f"sqlite:///{Path(tmp) / 'events.db'}",
            "grace": 1.0,
        }
        config = dataclasses.replace(ServerConfig(**defaults), **overrides)
        server = Server(config, traces=traces)
        await server.start()
        try:
            yield server
        finally:
            await server.stop()
