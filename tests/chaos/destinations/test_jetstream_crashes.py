"""JetStream destination: every acknowledged event and alert exactly once in the stream,
through SIGKILLs of eventwire and of nats-server, and outages past the duplicate window.

Sized for CI (20,000 events and 200 alerts per test, not the issue's 100,000 and
1,000): the faults are what the test is about, and the count only has to span
several relay pages around each of them. EVENTWIRE_DESTINATION_SCALE=5 runs the
full-size version.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from eventwire.testing._process import ServerProcess
from tests.support.destinations import Load, check_exactly_once, metric, wait_for_stream
from tests.support.nats import NatsServer

SCALE = int(os.environ.get("EVENTWIRE_DESTINATION_SCALE", "1"))
EVENTS = 20_000 * SCALE
ALERTS = 200 * SCALE
BATCH = 500
STREAM = "EW"


def eventwire(tmp_path: Path, nats: NatsServer, window: float) -> ServerProcess:
    url = f"js=nats://127.0.0.1:{nats.port}/{STREAM}?duplicate_window={window}&batch=500"
    return ServerProcess(
        "--store",
        f"sqlite:///{tmp_path / 'events.db'}",
        "--sqlite-synchronous",
        "normal",
        "--destination",
        url,
        "--grace",
        "1",
        http_address="",
    )


async def until_caught_up(server: ServerProcess, timeout: float = 60.0) -> None:
    for _ in range(int(timeout * 5)):
        if (
            await metric(server.metrics_address, "eventwire_destination_lag_rows", destination="js")
            == 0
        ):
            return
        await asyncio.sleep(0.2)
    raise AssertionError("the destination's lag did not return to 0")


async def stream_count(nats: NatsServer) -> int:
    import nats as nats_py

    try:
        nc = await nats_py.connect(nats.url, connect_timeout=1, allow_reconnect=False)
    except Exception:  # noqa: BLE001 - not up yet
        return -1
    try:
        info = await nc.jetstream().stream_info(STREAM)
        return int(info.state.messages or 0)
    except Exception:  # noqa: BLE001 - JetStream still recovering
        return -1
    finally:
        await nc.close()


async def run(tmp_path: Path, *, window: float, downtime: float) -> None:
    """Events sent all along; meanwhile eventwire is SIGKILLed, then JetStream is
    SIGKILLed for ``downtime`` and, once the relay is draining the backlog that
    built up meanwhile, eventwire is SIGKILLed again (mid-page: published, not saved)."""
    nats = NatsServer(tmp_path / "nats").start()
    server = eventwire(tmp_path, nats, window)
    await asyncio.to_thread(server.start)
    batches = EVENTS // BATCH
    faults: list[asyncio.Task[None]] = []

    async def crash_eventwire() -> None:
        server.kill()
        await asyncio.sleep(downtime)
        await asyncio.to_thread(server.restart)

    async def crash_jetstream_then_eventwire() -> None:
        before = await stream_count(nats)
        nats.kill()
        await asyncio.sleep(downtime)
        await asyncio.to_thread(nats.start)
        for _ in range(1000):
            if await stream_count(nats) > before:
                break
            await asyncio.sleep(0.01)
        await crash_eventwire()

    def fault(done: int) -> None:
        if done == batches // 4:
            faults.append(asyncio.ensure_future(crash_eventwire()))
        if done == batches // 2:
            faults.append(asyncio.ensure_future(crash_jetstream_then_eventwire()))

    load = Load(EVENTS, ALERTS, batch=BATCH)
    try:
        await load.send(lambda: server.address, after_batch=fault)
        await asyncio.gather(*faults)
        messages = await wait_for_stream(nats.url, STREAM, EVENTS + ALERTS)
        check_exactly_once(messages, load)
        await until_caught_up(server)
    finally:
        server.kill()
        nats.stop()


async def test_exactly_once_through_eventwire_and_jetstream_kills(tmp_path: Path) -> None:
    await run(tmp_path, window=120.0, downtime=0.3)


async def test_exactly_once_when_outages_outlast_the_duplicate_window(tmp_path: Path) -> None:
    # A 1 s window and 2 s outages: a page published just before a kill is
    # outside the window when the relay comes back, so only the stream's tail
    # (read on restart) keeps it from being published twice.
    await run(tmp_path, window=1.0, downtime=2.0)
