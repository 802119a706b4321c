"""The gateway's ASGI app in-process: a real service and SQLite store, no sockets.

httpx's ASGI transport calls the app directly, so the routes, dispatch,
authentication and error mapping are tested in the unit tier; what needs a
socket (the HTTP protocol's limits, TLS, keep-alive) stays in the integration
tier.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from eventwire.frontends.http import GatewayApp
from eventwire.ingest.pipeline import IngestPipeline
from eventwire.ingest.service import IngestService
from eventwire.reads.service import ReadService
from eventwire.store import open_store


@asynccontextmanager
async def gateway_client(db_path: Path, **app_options: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client calling a :class:`GatewayApp` over a SQLite store at ``db_path``."""
    store = open_store(f"sqlite:///{db_path}")
    await store.open()
    pipeline = IngestPipeline(store)
    pipeline.start()
    reads = await ReadService.start(store)
    try:
        app = GatewayApp(
            IngestService(pipeline, store),
            reads=reads,
            ready=lambda: True,
            **{"max_body_bytes": 1 << 20, **app_options},
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client
    finally:
        await reads.close()
        await pipeline.close()
        await store.close()


def count_rows(db_path: Path, table: str) -> int:
    with sqlite3.connect(db_path) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608 - a table name of ours
