"""B1's per-event work in instructions (callgrind), eventwire beside its JSON reference.

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python bench/b1_instructions.py SHAPE N      # and N = 0

SHAPE is ``decode`` (upb parses a 1,000-event ``EventBatch``), ``rows`` (decode,
then ``IngestService.event_rows``), ``all`` (rows, then the SQLite store's own
insert and commit into a fresh file with eventwire's schema), and ``ref-rows`` /
``ref-all``, the same for ``bench/ref_json_batch.py`` (orjson, its row builder,
its commit). Batches are ``bench/_load.py``'s (3 properties, a fresh event id per
event). (Ir(N) - Ir(0)) / (N * 1000) is the instructions per event, free of the
machine's noise (bench/notes.md, B1).
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import orjson
from _load import PLACEHOLDER, grpc_template, json_template
from ref_json_batch import commit as ref_commit
from ref_json_batch import rows as ref_rows

from eventwire.api import analytics_pb2
from eventwire.ingest.service import IngestService
from eventwire.store.sqlite.writes import insert_events

EVENTS = 1000


def bodies(template: bytes, n: int) -> list[bytes]:
    # Every batch's ids are new (as in the load), so every insert really inserts.
    return [template.replace(PLACEHOLDER, b"%08x" % i) for i in range(n)]


def connection(path: Path) -> sqlite3.Connection:
    import asyncio

    from eventwire.store.sqlite import SQLiteStore

    async def migrate() -> None:
        store = SQLiteStore(str(path), synchronous="full")
        await store.open()
        await store.close()

    asyncio.run(migrate())
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = full")
    return conn


def main() -> None:
    shape, n = sys.argv[1], int(sys.argv[2])
    ours = not shape.startswith("ref-")
    batches = bodies(grpc_template(EVENTS) if ours else json_template(EVENTS), n)
    service = IngestService(None, None)  # type: ignore[arg-type]  # event_rows touches neither
    with tempfile.TemporaryDirectory() as tmp:
        conn = connection(Path(tmp) / "b1.db") if shape.endswith("all") else None
        for body in batches:
            if ours:
                batch = analytics_pb2.EventBatch.FromString(body)
                if shape == "decode":
                    continue
                rows, _ = service.event_rows(batch.events, "")
                if conn is not None:
                    conn.execute("BEGIN IMMEDIATE")
                    insert_events(conn, rows)
                    conn.execute("COMMIT")
            else:
                got = ref_rows(orjson.loads(body)["events"], time.time_ns() // 1_000_000)
                if conn is not None:
                    ref_commit(conn, got)


if __name__ == "__main__":
    main()
