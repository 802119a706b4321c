"""JetStream destination across failures of the parts around it: two eventwire
replicas on one PostgreSQL (the relaying one SIGKILLed: the other takes over), and
a 3-node JetStream cluster with an R3 stream (one node SIGKILLed mid-relay).

Sized for CI (10,000 events and 100 alerts each); the faults are the point.
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from pathlib import Path

from eventwire.testing._process import ServerProcess
from tests.conftest import pg_rows
from tests.support.destinations import Load, check_exactly_once, metric, wait_for_stream
from tests.support.nats import NatsServer, nats_cluster

EVENTS = 10_000
ALERTS = 100
STREAM = "EW"


async def caught_up(server: ServerProcess, timeout: float = 60.0) -> None:
    for _ in range(int(timeout * 5)):
        lag = await metric(
            server.metrics_address, "eventwire_destination_lag_rows", destination="js"
        )
        if lag == 0:
            return
        await asyncio.sleep(0.2)
    raise AssertionError("the destination's lag did not return to 0")


async def test_the_other_replica_takes_over_when_the_relaying_one_dies(
    pg_url: str, tmp_path: Path
) -> None:
    nats = NatsServer(tmp_path / "nats").start()
    destination = f"js=nats://127.0.0.1:{nats.port}/{STREAM}?batch=200"
    replicas = [
        ServerProcess("--store", pg_url, "--destination", destination,
                      "--destination-lease", "2", "--grace", "1", "--workers", "1",
                      http_address="")
        for _ in range(2)
    ]  # fmt: skip
    for replica in replicas:
        await asyncio.to_thread(replica.start)
    alive = list(replicas)
    turn = itertools.cycle(range(2))
    took_over: list[float] = []

    def holder() -> ServerProcess | None:
        rows = pg_rows(pg_url, "SELECT owner FROM eventwire_destinations WHERE name = 'js'")
        owner = str(rows[0][0]) if rows else ""
        return next((r for r in alive if owner and f":{r.pid}:" in owner), None)

    async def kill_the_holder() -> None:
        relaying = None
        for _ in range(100):
            relaying = holder()
            if relaying is not None:
                break
            await asyncio.sleep(0.05)
        assert relaying is not None, "no replica holds the destination"
        relaying.kill()
        alive.remove(relaying)
        started = asyncio.get_running_loop().time()
        for _ in range(200):
            if holder() is alive[0]:
                took_over.append(asyncio.get_running_loop().time() - started)
                return
            await asyncio.sleep(0.05)

    faults: list[asyncio.Task[None]] = []

    def fault(done: int) -> None:
        if done == 8:
            faults.append(asyncio.ensure_future(kill_the_holder()))

    def address() -> str:
        # Alternate while both live: both replicas commit, in one commit order.
        return alive[next(turn) % len(alive)].address

    load = Load(EVENTS, ALERTS, batch=500)
    try:
        await load.send(address, after_batch=fault)
        await asyncio.gather(*faults)
        assert took_over, "the surviving replica never took the lease"
        # Two seconds of lease, and a third of it between attempts to take it.
        assert took_over[0] < 10
        messages = await wait_for_stream(nats.url, STREAM, EVENTS + ALERTS)
        check_exactly_once(messages, load)
        await caught_up(alive[0])
    finally:
        for replica in replicas:
            replica.kill()
        nats.stop()


async def test_an_r3_stream_loses_nothing_when_a_node_dies_mid_relay(tmp_path: Path) -> None:
    with nats_cluster(tmp_path / "nats") as nodes:
        servers = ",".join(f"127.0.0.1:{n.port}" for n in nodes)
        server = ServerProcess(
            "--store", f"sqlite:///{tmp_path / 'e.db'}", "--sqlite-synchronous", "normal",
            "--destination", f"js=nats://{servers}/{STREAM}?replicas=3&batch=200",
            http_address="",
        )  # fmt: skip
        await asyncio.to_thread(server.start)

        def fault(done: int) -> None:
            if done == 10:
                nodes[0].kill()

        load = Load(EVENTS, ALERTS, batch=500)
        try:
            await load.send(lambda: server.address, after_batch=fault)
            urls = [n.url for n in nodes[1:]]
            messages = await wait_for_stream(urls, STREAM, EVENTS + ALERTS, timeout=90)
            check_exactly_once(messages, load)
            await caught_up(server)
        finally:
            server.kill()


async def test_one_sqlite_worker_of_two_relays(tmp_path: Path) -> None:
    """--workers 2 on one SQLite file: every worker runs the relay, the lease in the
    file lets one of them deliver, and the stream is exact."""
    nats = NatsServer(tmp_path / "nats").start()
    db = tmp_path / "w.db"
    server = ServerProcess(
        "--workers", "2", "--store", f"sqlite:///{db}", "--sqlite-synchronous", "normal",
        "--destination", f"js=nats://127.0.0.1:{nats.port}/{STREAM}?batch=200",
        http_address="",
    )  # fmt: skip
    await asyncio.to_thread(server.start)
    owners: set[str] = set()

    def fault(done: int) -> None:
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT owner FROM eventwire_destinations").fetchall()
        owners.update(str(owner) for (owner,) in rows if owner)

    load = Load(4_000, 40, batch=250)
    try:
        await load.send(lambda: server.address, after_batch=fault)
        messages = await wait_for_stream(nats.url, STREAM, 4_000 + 40)
        check_exactly_once(messages, load)
        assert len(owners) == 1  # one worker held the lease all along
        pid = int(owners.pop().split(":")[1])
        assert pid != server.pid  # a worker, not the supervisor
    finally:
        server.kill()
        nats.stop()
