"""The contenders ``bench/run.py`` measures eventwire against, one per child process.

    python bench/_servers.py KIND --port PORT [--db PATH] [--synchronous LEVEL]

gRPC baselines answer ``TrackEvent`` and ``TrackEvents`` by parsing the
request and returning a success reply (no storage: the best any Python gRPC
server can do), and count their OK replies for ``/bench.Counter/Get`` so the
harness counts successes server-side, not from h2load's HTTP status:

* ``grpc-aio``: ``grpc.aio`` on uvloop, as eventwire runs;
* ``grpc-sync``: grpcio's thread-pool server with 4 threads (4 beat 2, 8, 16);
* ``eventwire-sync``: a prototype of eventwire's real work (validation, row
  building, group commit into SQLite, durable replies) behind the *sync*
  server: 4 threads hand each request to the pipeline's event loop thread and
  wait for the commit. No interceptors, health or reflection: it exists to
  answer "would switching server model pay?", not to ship.

HTTP baselines (uvicorn + httptools + uvloop) store through eventwire's own
``IngestService`` → group commit → SQLite, so only the HTTP layer differs:

* ``fastapi`` / ``starlette``: the idiomatic one-event routes of
  ``bench/http_gateway.py``;
* ``raw-asgi``: a bare ASGI callable with orjson: ``POST /v1/events`` (one
  event) and ``POST /v1/events:batch`` (a JSON array, rows built straight from
  the parsed dicts, minimal checks): the fastest honest JSON batch endpoint.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import signal
import threading
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import orjson

from eventwire.api import analytics_pb2

BENCH = Path(__file__).resolve().parent
COUNTER = "/bench.Counter/Get"


class _Count:
    def __init__(self) -> None:
        self.ok = 0
        self.events = 0
        self.lock = threading.Lock()


def _reply_count(count: _Count) -> bytes:
    return orjson.dumps({"ok": count.ok, "events": count.events})


# -- gRPC baselines -------------------------------------------------------------------


def _echo_handlers(count: _Count, *, aio: bool) -> grpc.GenericRpcHandler:
    track_reply = analytics_pb2.TrackEventResponse(success=True).SerializeToString()

    def track(raw: bytes) -> bytes:
        req = analytics_pb2.TrackEventRequest.FromString(raw)
        if not req.event_name:
            raise ValueError("event_name")
        count.ok += 1
        count.events += 1
        return track_reply

    def batch(raw: bytes) -> bytes:
        req = analytics_pb2.EventBatch.FromString(raw)
        n = len(req.events)
        count.ok += 1
        count.events += n
        return analytics_pb2.IngestAck(sequence=req.sequence, accepted=n).SerializeToString()

    if aio:

        async def track_a(raw: bytes, context: Any) -> bytes:
            return track(raw)

        async def batch_a(raw: bytes, context: Any) -> bytes:
            return batch(raw)

        async def get_a(raw: bytes, context: Any) -> bytes:
            return _reply_count(count)

        methods: dict[str, Any] = {"TrackEvent": track_a, "TrackEvents": batch_a}
        getter: Any = get_a
    else:

        def track_s(raw: bytes, context: Any) -> bytes:
            with count.lock:  # the counter must not lose increments across threads
                return track(raw)

        def batch_s(raw: bytes, context: Any) -> bytes:
            with count.lock:
                return batch(raw)

        def get_s(raw: bytes, context: Any) -> bytes:
            return _reply_count(count)

        methods = {"TrackEvent": track_s, "TrackEvents": batch_s}
        getter = get_s
    return _Handlers(
        {
            **{
                f"/analytics.AnalyticsService/{name}": grpc.unary_unary_rpc_method_handler(fn)
                for name, fn in methods.items()
            },
            COUNTER: grpc.unary_unary_rpc_method_handler(getter),
        }
    )


class _Handlers(grpc.GenericRpcHandler):
    def __init__(self, handlers: dict[str, Any]) -> None:
        self._handlers = handlers

    def service(self, handler_call_details: Any) -> Any:
        return self._handlers.get(handler_call_details.method)


OPTIONS = [("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", 16 << 20)]


def serve_grpc_aio(port: int) -> None:
    import uvloop

    async def main() -> None:
        server = grpc.aio.server(options=OPTIONS)
        server.add_generic_rpc_handlers((_echo_handlers(_Count(), aio=True),))
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await server.stop(1)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


def _serve_sync(port: int, handlers: grpc.GenericRpcHandler, threads: int) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(threads), options=OPTIONS)
    server.add_generic_rpc_handlers((handlers,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.stop(1).wait()


def serve_grpc_sync(port: int, threads: int) -> None:
    _serve_sync(port, _echo_handlers(_Count(), aio=False), threads)


def serve_eventwire_sync(port: int, db: str, synchronous: str, threads: int) -> None:
    """eventwire's service and pipeline on a loop thread, behind grpcio's sync server."""
    import uvloop

    from eventwire._errors import ServiceError

    loop = uvloop.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True, name="pipeline-loop").start()
    service = asyncio.run_coroutine_threadsafe(_service(db, synchronous), loop).result()
    count = _Count()

    def track(req: analytics_pb2.TrackEventRequest, context: Any) -> Any:
        try:
            reply = asyncio.run_coroutine_threadsafe(service.track_event(req, ""), loop).result()
        except ServiceError as err:
            context.abort(err.code, err.message)
        with count.lock:
            count.ok += 1
            count.events += 1
        return reply

    def batch(req: analytics_pb2.EventBatch, context: Any) -> Any:
        try:
            ack = asyncio.run_coroutine_threadsafe(service.track_batch(req, ""), loop).result()
        except ServiceError as err:
            context.abort(err.code, err.message)
        with count.lock:
            count.ok += 1
            count.events += ack.accepted
        return ack

    def get(raw: bytes, context: Any) -> bytes:
        return _reply_count(count)

    handlers = _Handlers(
        {
            "/analytics.AnalyticsService/TrackEvent": grpc.unary_unary_rpc_method_handler(
                track,
                request_deserializer=analytics_pb2.TrackEventRequest.FromString,
                response_serializer=analytics_pb2.TrackEventResponse.SerializeToString,
            ),
            "/analytics.AnalyticsService/TrackEvents": grpc.unary_unary_rpc_method_handler(
                batch,
                request_deserializer=analytics_pb2.EventBatch.FromString,
                response_serializer=analytics_pb2.IngestAck.SerializeToString,
            ),
            COUNTER: grpc.unary_unary_rpc_method_handler(get),
        }
    )
    _serve_sync(port, handlers, threads)

    async def close() -> None:
        await service._pipeline.close(timeout=10)
        await service._store.close()

    # Commit what is queued and stop the writer task before the loop thread dies.
    asyncio.run_coroutine_threadsafe(close(), loop).result(timeout=30)
    loop.call_soon_threadsafe(loop.stop)


# -- HTTP baselines -------------------------------------------------------------------


async def _service(db: str, synchronous: str) -> Any:
    from eventwire.ingest.pipeline import IngestPipeline
    from eventwire.ingest.service import IngestService
    from eventwire.store import open_store

    store = open_store(f"sqlite:///{db}", sqlite_synchronous=synchronous)
    await store.open()
    pipeline = IngestPipeline(store)
    pipeline.start()
    return IngestService(pipeline, store)


def _http_gateway_module() -> Any:
    spec = importlib.util.spec_from_file_location("bench_http_gateway", BENCH / "http_gateway.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _raw_asgi_app(service: Any) -> Any:
    """The fastest honest JSON endpoints: bare ASGI, orjson, rows built from dicts."""
    from eventwire._ids import uuid7
    from eventwire.ingest.service import now_ms
    from eventwire.store.base import EventRow

    pipeline = service._pipeline

    async def body_of(receive: Any) -> bytes:
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                return b"".join(chunks)

    def row(event: dict[str, Any], received: int) -> EventRow:
        name = event.get("eventName")
        if not isinstance(name, str) or not name:
            raise ValueError("eventName")
        props = event.get("properties") or {}
        return EventRow(
            "",
            event.get("eventId") or uuid7(),
            name,
            event.get("userId", ""),
            event.get("timestamp") or received,
            received,
            orjson.dumps(props).decode() if props else "{}",
        )

    async def respond(send: Any, status: int, body: bytes) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if scope["method"] == "GET" and path == "/healthz":
            await respond(send, 200, b'{"status":"SERVING"}')
            return
        try:
            data = orjson.loads(await body_of(receive))
            received = now_ms()
            if path == "/v1/events":
                one = row(data, received)
                inserted = await pipeline.add_events((one,))
                await respond(
                    send,
                    200,
                    orjson.dumps(
                        {"success": True, "eventId": one.event_id, "duplicate": inserted == 0}
                    ),
                )
            elif path == "/v1/events:batch":
                rows = [row(event, received) for event in data["events"]]
                inserted = await pipeline.add_events(rows)
                await respond(
                    send,
                    200,
                    orjson.dumps({"accepted": inserted, "duplicates": len(rows) - inserted}),
                )
            else:
                await respond(send, 404, b'{"message":"not found"}')
        except (ValueError, KeyError, TypeError) as exc:
            await respond(send, 400, orjson.dumps({"message": str(exc)}))

    return app


def serve_http(kind: str, port: int, db: str, synchronous: str) -> None:
    import uvloop

    module = _http_gateway_module()

    async def main() -> None:
        service = await _service(db, synchronous)
        if kind == "raw-asgi":
            app = _raw_asgi_app(service)
        else:
            app = (module._starlette_app if kind == "starlette" else module._fastapi_app)(service)
        await module.serve_app(app, port)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


KINDS = ("grpc-aio", "grpc-sync", "eventwire-sync", "fastapi", "starlette", "raw-asgi")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", default="")
    parser.add_argument("--synchronous", default="full")
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    if args.kind == "grpc-aio":
        serve_grpc_aio(args.port)
    elif args.kind == "grpc-sync":
        serve_grpc_sync(args.port, args.threads)
    elif args.kind == "eventwire-sync":
        serve_eventwire_sync(args.port, args.db, args.synchronous, args.threads)
    else:
        serve_http(args.kind, args.port, args.db, args.synchronous)


if __name__ == "__main__":
    main()
