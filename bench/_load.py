"""Batch load generator for ``bench/run.py``: 1k-event batches over gRPC, JSON/HTTP or
Connect (binary protobuf on the HTTP door).

    python bench/_load.py grpc|http|connect TARGET --seconds S [--in-flight N] [--events 1000]

Every batch is pre-encoded once; each send only swaps an 8-character
placeholder in every event id for a fresh counter (same length, so the
protobuf or JSON stays valid), so every event is new and really inserted, and
the client spends microseconds per batch, not per event. Ids look like
UUIDv7s (time-ordered), as the Tracker sends them. Events/s counts what the
server acknowledged as newly stored (IngestAck.accepted), after a warm-up;
``accepted_total`` also counts the warm-up's (for CPU per event over the whole
run). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

PLACEHOLDER = b"PPPPPPPP"
PROPS = {"plan": "pro", "src": "bench", "path": "/home"}


def events(n: int) -> list[dict[str, object]]:
    return [
        {
            "eventName": "page_view",
            "userId": f"user-{i % 100}",
            "eventId": f"{PLACEHOLDER.decode()}-{i:04x}-7000-8000-{i:012x}",
            "properties": PROPS,
        }
        for i in range(n)
    ]


def grpc_template(n: int) -> bytes:
    from eventwire.api import analytics_pb2

    return analytics_pb2.EventBatch(
        sequence=1,
        events=[
            analytics_pb2.TrackEventRequest(
                event_name=str(e["eventName"]),
                user_id=str(e["userId"]),
                event_id=str(e["eventId"]),
                properties=PROPS,
            )
            for e in events(n)
        ],
    ).SerializeToString()


def json_template(n: int) -> bytes:
    return orjson.dumps({"sequence": "1", "events": events(n)})


async def drive(
    send: Callable[[bytes], Awaitable[int]],
    template: bytes,
    seconds: float,
    warmup: float,
    in_flight: int,
) -> dict[str, float]:
    counter = itertools.count(int(time.time()) << 20)  # unique across runs on one database
    accepted = 0
    accepted_total = 0  # warm-up included: what the server stored while the load ran
    batches = 0
    latencies: list[float] = []
    measuring = False
    start = time.perf_counter()
    begin_measure = start + warmup
    end = begin_measure + seconds

    async def worker() -> None:
        nonlocal accepted, accepted_total, batches
        while (now := time.perf_counter()) < end:
            body = template.replace(PLACEHOLDER, b"%08x" % (next(counter) & 0xFFFFFFFF))
            got = await send(body)
            accepted_total += got
            if measuring and now >= begin_measure:
                accepted += got
                batches += 1
                latencies.append(time.perf_counter() - now)

    async def clock() -> None:
        nonlocal measuring
        await asyncio.sleep(warmup)
        measuring = True

    await asyncio.gather(clock(), *(worker() for _ in range(in_flight)))
    latencies.sort()
    return {
        "events_per_s": accepted / seconds,
        "batches_per_s": batches / seconds,
        "accepted": accepted,
        "accepted_total": accepted_total,
        "p50_ms": latencies[len(latencies) // 2] * 1000 if latencies else 0.0,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000 if latencies else 0.0,
    }


async def grpc_load(target: str, args: argparse.Namespace) -> dict[str, float]:
    import grpc

    from eventwire.api import analytics_pb2

    options = [("grpc.max_send_message_length", 16 << 20)]
    async with grpc.aio.insecure_channel(target, options=options) as channel:
        call: Any = channel.unary_unary(
            "/analytics.AnalyticsService/TrackEvents",
            request_serializer=None,
            response_deserializer=analytics_pb2.IngestAck.FromString,
        )

        async def send(body: bytes) -> int:
            ack = await call(body, timeout=30)
            return int(ack.accepted)

        return await drive(
            send, grpc_template(args.events), args.seconds, args.warmup, args.in_flight
        )


async def http_load(target: str, args: argparse.Namespace) -> dict[str, float]:
    """JSON batches to ``POST /v1:events:batch``, or with ``connect`` protobuf batches to
    the same door's Connect ``TrackEvents`` (application/proto); HTTP/1.1 both."""
    host, _, port = target.rpartition(":")
    connect = args.protocol == "connect"
    path = "/analytics.AnalyticsService/TrackEvents" if connect else "/v1/events:batch"
    media = "application/proto" if connect else "application/json"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {target}\r\n"
        f"Content-Type: {media}\r\nContent-Length: %d\r\n\r\n"
    )
    if connect:
        from eventwire.api import analytics_pb2

        def accepted(body: bytes) -> int:
            return int(analytics_pb2.IngestAck.FromString(body).accepted)
    else:

        def accepted(body: bytes) -> int:
            return int(orjson.loads(body).get("accepted", 0))

    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(args.in_flight):
        pool.put_nowait(await asyncio.open_connection(host, int(port)))

    async def send(body: bytes) -> int:
        reader, writer = await pool.get()
        try:
            writer.write((head % len(body)).encode() + body)
            status_and_headers = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in status_and_headers.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            reply = await reader.readexactly(length)
            if not status_and_headers.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"HTTP error: {status_and_headers[:40]!r} {reply[:200]!r}")
            return accepted(reply)
        finally:
            pool.put_nowait((reader, writer))

    try:
        template = grpc_template(args.events) if connect else json_template(args.events)
        return await drive(send, template, args.seconds, args.warmup, args.in_flight)
    finally:
        while not pool.empty():
            pool.get_nowait()[1].close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("protocol", choices=("grpc", "http", "connect"))
    parser.add_argument("target")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--in-flight", type=int, default=8)
    parser.add_argument("--events", type=int, default=1000)
    args = parser.parse_args()
    import uvloop

    load = grpc_load if args.protocol == "grpc" else http_load
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        result = runner.run(load(args.target, args))
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
