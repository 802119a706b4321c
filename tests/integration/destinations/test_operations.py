"""Destination operations on a real JetStream: dead letters, pause, resume, replay and
discard, over the gateway and the CLI."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import httpx
import nats
from nats.js.api import StreamConfig

from eventwire.api import analytics_pb2, analytics_pb2_grpc
from eventwire.runtime.cli import main
from eventwire.testing import no_backoff, running_server
from tests.support.nats import nats_server, stream_messages


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def test_dead_letters_pause_resume_replay_and_discard(tmp_path: Path, capsys: Any) -> None:
    with nats_server(tmp_path / "nats") as js_server, no_backoff():
        nc = await nats.connect(js_server.url)
        # A stream that refuses big messages: such a row can never be delivered.
        await nc.jetstream().add_stream(
            StreamConfig(name="EW", subjects=["eventwire.>"], max_msg_size=1024)
        )
        await nc.close()
        destination = f"js=nats://127.0.0.1:{js_server.port}/EW?batch=1&attempts=2"
        async with (
            running_server(store=f"sqlite:///{tmp_path / 'e.db'}", destinations=(destination,))
            as srv,
            grpc.aio.insecure_channel(srv.address) as channel,
            httpx.AsyncClient(base_url=f"http://{srv.http_address}") as http,
        ):  # fmt: skip
            stub = analytics_pb2_grpc.AnalyticsServiceStub(channel)

            async def track(event_id: str, size: int = 0) -> None:
                properties = {"blob": "x" * size} if size else {}
                await stub.TrackEvent(
                    analytics_pb2.TrackEventRequest(
                        event_name="e", event_id=event_id, properties=properties
                    )
                )

            async def in_stream() -> int:
                return len(await stream_messages(js_server.url, "EW"))

            async def letters() -> list[dict[str, Any]]:
                reply = await http.get("/v1/destinations:deadLetters", params={"name": "js"})
                assert reply.status_code == 200, reply.text
                found: list[dict[str, Any]] = reply.json()["deadLetters"]
                return found

            for event_id, size in (("a", 0), ("big", 4000), ("b", 0)):
                await track(event_id, size)
            await until(lambda: _eq(in_stream(), 2), "two small events in the stream")
            await until(lambda: _len(letters(), 1), "the big one in the dead letters")
            (letter,) = await letters()
            assert (letter["key"], letter["kind"], letter["attempts"]) == ("big", "event", 2)
            assert "exceeds maximum" in letter["error"]

            listed = (await http.get("/v1/destinations")).json()["destinations"]
            assert [(d["name"], d["carries"], d["deadLettered"]) for d in listed] == [
                ("js", "both", "1")
            ]

            paused = await http.post("/v1/destinations:pause", json={"name": "js"})
            assert paused.status_code == 200, paused.text
            assert paused.json()["paused"] is True
            await track("c")
            await asyncio.sleep(1.0)  # a paused relay delivers nothing
            assert await in_stream() == 2
            resumed = await http.post("/v1/destinations:resume", json={"name": "js"})
            assert resumed.json()["paused"] is False
            await until(lambda: _eq(in_stream(), 3), "delivered once resumed")

            # Replayed from the start: the stream already holds them, nothing doubles.
            replay = await http.post(
                "/v1/destinations:replay", json={"name": "js", "fromPosition": "0"}
            )
            assert replay.status_code == 200, replay.text
            await track("d")
            await until(lambda: _eq(in_stream(), 4), "delivered after the replay")
            await asyncio.sleep(0.5)
            keys = [h["Nats-Msg-Id"] for _, h, _ in await stream_messages(js_server.url, "EW")]
            assert keys == ["a", "b", "c", "d"]
            # From a time: every event since then again, and still nothing doubles.
            since = await http.post(
                "/v1/destinations:replay", json={"name": "js", "since": "1", "kinds": "events"}
            )
            assert since.status_code == 200, since.text
            assert since.json()["eventsPosition"] == "0.0"
            both = await http.post(
                "/v1/destinations:replay", json={"name": "js", "since": "1", "fromPosition": "3"}
            )
            assert both.status_code == 400
            await track("e")
            await until(lambda: _eq(in_stream(), 5), "delivered after the replay from a time")

            missing = await http.post("/v1/destinations:pause", json={"name": "nope"})
            assert missing.status_code == 404

            # Retried while the stream still refuses it: it stays a dead letter.
            args = ["destinations", "dead-letters", "js", "--retry", "--target", srv.address]
            assert await asyncio.to_thread(main, args) == 1
            assert "FAILED_PRECONDITION" in capsys.readouterr().err
            assert len(await letters()) == 1
            # The stream takes big messages now: retried, it is appended once, and
            # the relay's own bookkeeping is untouched (nothing else again).
            nc = await nats.connect(js_server.url)
            await nc.jetstream().update_stream(
                StreamConfig(name="EW", subjects=["eventwire.>"], max_msg_size=-1)
            )
            await nc.close()
            assert await asyncio.to_thread(main, args) == 0
            assert '"count": "1"' in capsys.readouterr().out
            assert await letters() == []
            await track("f")
            await until(lambda: _eq(in_stream(), 7), "delivered after the retry")
            keys = [h["Nats-Msg-Id"] for _, h, _ in await stream_messages(js_server.url, "EW")]
            assert keys == ["a", "b", "c", "d", "e", "big", "f"]
            discard = await http.post(
                "/v1/destinations:discardDeadLetters", json={"name": "js", "all": True}
            )
            assert discard.json()["count"] == "0"

            async def caught_up() -> bool:
                listed = (await http.get("/v1/destinations")).json()["destinations"]
                return bool(listed[0]["lagRows"] == "0")

            await until(caught_up, "lag measured back to 0")
            assert await asyncio.to_thread(main, ["destinations", "--target", srv.address]) == 0
            assert "js\trelaying\tFalse\t0\t" in capsys.readouterr().out


async def _eq(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


async def _len(value: Awaitable[list[Any]], expected: int) -> bool:
    return len(await value) == expected
