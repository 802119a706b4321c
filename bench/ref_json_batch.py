"""Target B1's reference: the plainest fast JSON batch server that does eventwire's durable work.

    python bench/ref_json_batch.py --port PORT --db PATH [--synchronous full]

Raw ASGI on uvicorn (httptools, uvloop), orjson, no framework. ``POST
/v1/events:batch`` takes ``{"events": [...]}`` in the gateway's JSON shape and
stores every event the way eventwire does: the schema is eventwire's own
(its migrations, through ``SQLiteStore``: same columns, same indexes, WAL),
one transaction per batch at the same ``synchronous`` level, ``INSERT OR
IGNORE`` on ``(tenant, event_id)``, a time-ordered id (UUIDv7) for an event
without one, the timestamp normalised to milliseconds, properties stored as
JSON. The write runs on one writer thread, so the loop keeps parsing while
SQLite commits, and the reply goes out after the commit. It checks less than
eventwire (types and a non-empty name; no length limits, no per-field error
report) and has no auth, limits, metrics or tracing: a floor, not a rival.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from eventwire._ids import uuid7
from eventwire.store.sqlite import SQLiteStore

INSERT = (
    "INSERT OR IGNORE INTO events"
    " (tenant, event_id, event_name, user_id, ts, received_at, properties)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
Row = tuple[str, str, str, str, int, int, str]


def to_ms(ts: int) -> int:
    """Seconds, milliseconds, microseconds or nanoseconds, told apart by magnitude."""
    if ts < 10**11:
        return ts * 1000
    if ts < 10**14:
        return ts
    return ts // 1000 if ts < 10**17 else ts // 1_000_000


def rows(events: list[dict[str, Any]], received: int) -> list[Row]:
    out: list[Row] = []
    for event in events:
        name = event["eventName"]
        props = event.get("properties") or {}
        if type(name) is not str or not name or type(props) is not dict:
            raise ValueError("each event needs an eventName and a properties object")
        ts = event.get("timestamp") or 0
        out.append(
            (
                "",
                event.get("eventId") or uuid7(),
                name,
                event.get("userId") or "",
                to_ms(int(ts)) if ts else received,
                received,
                orjson.dumps(props).decode() if props else "{}",
            )
        )
    return out


def commit(conn: sqlite3.Connection, batch: list[Row]) -> int:
    conn.execute("BEGIN IMMEDIATE")
    try:
        inserted = conn.executemany(INSERT, batch).rowcount
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return inserted


def make_app(conn: sqlite3.Connection) -> Any:
    writer = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")

    async def reply(send: Any, status: int, body: bytes) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/healthz":
            return await reply(send, 200, b'{"status":"SERVING"}')
        if scope["path"] != "/v1/events:batch" or scope["method"] != "POST":
            return await reply(send, 404, b'{"message":"not found"}')
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        try:
            batch = rows(orjson.loads(b"".join(chunks))["events"], time.time_ns() // 1_000_000)
        except (ValueError, KeyError, TypeError) as exc:
            return await reply(send, 400, orjson.dumps({"message": str(exc)}))
        inserted = await asyncio.get_running_loop().run_in_executor(writer, commit, conn, batch)
        body = orjson.dumps({"accepted": inserted, "duplicates": len(batch) - inserted})
        return await reply(send, 200, body)

    return app


async def serve(port: int, db: str, synchronous: str) -> None:
    import uvicorn

    store = SQLiteStore(db, synchronous=synchronous)  # eventwire's schema and migrations
    await store.open()
    await store.close()
    conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    for pragma in (f"synchronous = {synchronous}", "busy_timeout = 5000", "mmap_size = 0"):
        conn.execute(f"PRAGMA {pragma}")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    config = uvicorn.Config(
        make_app(conn), host="127.0.0.1", port=port, http="httptools",
        lifespan="off", access_log=False, log_level="warning",
    )  # fmt: skip
    await uvicorn.Server(config).serve()
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--synchronous", default="full")
    args = parser.parse_args()
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(args.port, args.db, args.synchronous))


if __name__ == "__main__":
    main()
