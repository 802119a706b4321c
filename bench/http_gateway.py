"""One-event POST throughput: eventwire's gateway vs Starlette and FastAPI baselines.

Every contender does the same work per request, on the same stack below HTTP:

* read the body, parse the JSON, map it onto ``TrackEventRequest``;
* validate it and store it through the same ``IngestService`` → group-commit
  ``IngestPipeline`` → SQLite (WAL, ``synchronous=normal`` for all of them);
* answer with the ``TrackEventResponse`` as proto3 JSON once the row committed.

They differ only in the HTTP layer, all on uvicorn + httptools + uvloop:

* ``eventwire``: the real ``eventwire serve`` (gRPC server running idle
  alongside, same process), i.e. the raw ASGI gateway with orjson + json_format;
* ``starlette``: an idiomatic Starlette route (``await request.body()``,
  orjson + json_format, ``Response``);
* ``fastapi``: an idiomatic FastAPI route with a pydantic body model
  (``extra="forbid"``, camelCase aliases) converted to the protobuf request,
  returning a dict that FastAPI serialises.

Each server runs pinned to CPU 0, ``wrk`` (or, if it is missing, a small
httpx-based generator) pinned to CPU 1 (bench/_harness.py). Contenders take
turns within each repeat (order rotated per repeat), and the table reports
medians, with the server's CPU per request; one record per contender goes to
bench/results/history.jsonl.

    .venv/bin/python bench/http_gateway.py --repeats 5 --duration 8
"""

# No "from __future__ import annotations": FastAPI must see the local body model.

import argparse
import asyncio
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

from _cpu import per_request_us
from _harness import CpuMeter, Run, free_port, healthz, pinning, publish, record, wait_ready

BODY = b'{"eventName":"bench_event","userId":"user-42","properties":{"plan":"pro","src":"wrk"}}'
CONTENDERS = ("eventwire", "starlette", "fastapi")


# -- servers (run in child processes) -----------------------------------------------


async def _service(db: str) -> Any:
    from eventwire.ingest.pipeline import IngestPipeline
    from eventwire.ingest.service import IngestService
    from eventwire.store import open_store

    store = open_store(f"sqlite:///{db}", sqlite_synchronous="normal")
    await store.open()
    pipeline = IngestPipeline(store)
    pipeline.start()
    return IngestService(pipeline, store)


def _starlette_app(service: Any) -> Any:
    import orjson
    from google.protobuf import json_format
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from eventwire._errors import ServiceError
    from eventwire.api import analytics_pb2

    async def track(request: Request) -> Response:
        try:
            req = json_format.ParseDict(
                orjson.loads(await request.body()), analytics_pb2.TrackEventRequest()
            )
            reply = await service.track_event(req, "")
        except (ValueError, json_format.ParseError, ServiceError) as exc:
            return Response(orjson.dumps({"message": str(exc)}), 400, media_type="application/json")
        body = json_format.MessageToDict(reply, always_print_fields_with_no_presence=True)
        return Response(orjson.dumps(body), media_type="application/json")

    async def healthz(request: Request) -> Response:
        return Response(b'{"status":"SERVING"}', media_type="application/json")

    return Starlette(
        routes=[
            Route("/v1/events", track, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


def _fastapi_app(service: Any) -> Any:
    from fastapi import FastAPI, HTTPException
    from google.protobuf import json_format
    from pydantic import BaseModel, ConfigDict, Field

    from eventwire._errors import ServiceError
    from eventwire.api import analytics_pb2

    class TrackEventBody(BaseModel):
        model_config = ConfigDict(extra="forbid", populate_by_name=True)
        event_name: str = Field("", alias="eventName")
        user_id: str = Field("", alias="userId")
        timestamp: int = 0
        properties: dict[str, str] = Field(default_factory=dict)
        event_id: str = Field("", alias="eventId")

    app = FastAPI()

    @app.post("/v1/events")
    async def track(body: TrackEventBody) -> dict[str, Any]:
        req = analytics_pb2.TrackEventRequest(**body.model_dump())
        try:
            reply = await service.track_event(req, "")
        except ServiceError as exc:
            raise HTTPException(400, exc.message) from exc
        out: dict[str, Any] = json_format.MessageToDict(
            reply, always_print_fields_with_no_presence=True
        )
        return out

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "SERVING"}

    return app


def serve(kind: str, port: int, db: str) -> None:
    import uvloop

    if kind == "eventwire":
        from eventwire.config import ServerConfig
        from eventwire.runtime.server import serve as serve_eventwire

        config = ServerConfig(
            address="127.0.0.1:0",
            http_address=f"127.0.0.1:{port}",
            store=f"sqlite:///{db}",
            sqlite_synchronous="normal",
            log_level="warning",
        )
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(serve_eventwire(config))
        return

    async def main() -> None:
        service = await _service(db)
        app = _starlette_app(service) if kind == "starlette" else _fastapi_app(service)
        await serve_app(app, port)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


async def serve_app(app: Any, port: int) -> None:
    """``app`` on uvicorn as every HTTP contender runs (here and in bench/run.py):
    httptools, no lifespan, no access log, so only the app differs."""
    import uvicorn

    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
    )
    await uvicorn.Server(config).serve()


# -- load generation (parent process) -----------------------------------------------

# Also bench/run.py's: requests, errors, p50 and p99 in µs, run time in µs.
WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '%s'
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local errors = summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout
  io.write(string.format("BENCH %%d %%d %%d %%d %%d\\n", summary.requests, errors,
    latency:percentile(50), latency:percentile(99), summary.duration))
end
"""


def _check_reply(port: int) -> None:
    """One real request first: a contender that answers errors fast must not win."""
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/events",
        data=BODY,
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=5) as r:  # noqa: S310 - loopback
        reply = json.loads(r.read())
    assert reply["success"] is True, reply


def _run_wrk(port: int, args: argparse.Namespace, script: str) -> dict[str, float]:
    out = subprocess.run(
        args.pin.load([
            "wrk", "-t1", f"-c{args.connections}",
            f"-d{args.duration}s", "-s", script, f"http://127.0.0.1:{port}/v1/events",
        ]),
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    m = re.search(r"BENCH (\d+) (\d+) (\d+) (\d+)", out)
    if m is None:
        raise RuntimeError(f"cannot parse wrk output:\n{out}")
    requests, errors, p50, p99 = (int(g) for g in m.groups())
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return {"rps": rps, "errors": errors, "requests": requests, "p50_ms": p50 / 1000,
            "p99_ms": p99 / 1000}  # fmt: skip


def _run_httpx(port: int, args: argparse.Namespace) -> dict[str, float]:
    """Fallback load generator: N keep-alive connections in one process on the client CPU."""
    code = f"""
import asyncio, time, httpx
async def worker(client, stop, out):
    while time.monotonic() < stop:
        t = time.monotonic()
        r = await client.post("/v1/events", content={BODY!r},
                              headers={{"content-type": "application/json"}})
        out.append((r.status_code, time.monotonic() - t))
async def main():
    out = []
    limits = httpx.Limits(max_connections={args.connections})
    async with httpx.AsyncClient(base_url="http://127.0.0.1:{port}", limits=limits) as c:
        stop = time.monotonic() + {args.duration}
        t0 = time.monotonic()
        await asyncio.gather(*(worker(c, stop, out) for _ in range({args.connections})))
        el = time.monotonic() - t0
    lat = sorted(x[1] for x in out)
    print(len(out) / el, sum(1 for x in out if x[0] != 200), len(out),
          lat[len(lat) // 2] * 1000, lat[int(len(lat) * 0.99)] * 1000)
asyncio.run(main())
"""
    out = subprocess.run(
        args.pin.load([sys.executable, "-c", code]),
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    rps, errors, requests, p50, p99 = (float(x) for x in out)
    return {"rps": rps, "errors": errors, "requests": requests, "p50_ms": p50, "p99_ms": p99}


def _one(kind: str, args: argparse.Namespace, tmp: Path, script: str) -> dict[str, float]:
    port = free_port()
    db = tmp / f"{kind}-{port}.db"
    proc = subprocess.Popen(
        args.pin.server([sys.executable, __file__, "--serve", kind,
                         "--port", str(port), "--db", str(db)]),
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_ready(proc, healthz(f"127.0.0.1:{port}"), kind)
        _check_reply(port)
        with CpuMeter(proc.pid) as cpu:
            result = _run_wrk(port, args, script) if shutil.which("wrk") else _run_httpx(port, args)
        # wrk's requests include the ones cut off at the end; near enough for µs per request.
        return result | {"cpu_us": per_request_us(cpu.seconds, result["requests"])}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--duration", type=int, default=8, help="seconds per run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--server-cpu", default="0")
    parser.add_argument("--client-cpu", default="1")
    parser.add_argument("--only", nargs="*", choices=CONTENDERS, default=list(CONTENDERS))
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.db)
        return
    args.pin = pinning(args.server_cpu, args.client_cpu)
    this = Run.now(args.pin)

    generator = "wrk" if shutil.which("wrk") else "httpx (wrk not installed)"
    runs: dict[str, list[dict[str, float]]] = {kind: [] for kind in args.only}
    with tempfile.TemporaryDirectory(prefix="eventwire-bench-") as tmp_name:
        tmp = Path(tmp_name)
        script = str(tmp / "post.lua")
        Path(script).write_text(WRK_SCRIPT % BODY.decode())
        for repeat in range(args.repeats):
            order = args.only[repeat % len(args.only) :] + args.only[: repeat % len(args.only)]
            for kind in order:
                result = _one(kind, args, tmp, script)
                runs[kind].append(result)
                print(
                    f"repeat {repeat + 1}/{args.repeats} {kind:10s} {result['rps']:9.0f} req/s "
                    f"p50 {result['p50_ms']:.2f} ms p99 {result['p99_ms']:.2f} ms "
                    f"errors {result['errors']:.0f}",
                    flush=True,
                )

    summary: dict[str, dict[str, Any]] = {
        kind: {
            "median_rps": statistics.median(r["rps"] for r in rs),
            "median_p50_ms": statistics.median(r["p50_ms"] for r in rs),
            "median_p99_ms": statistics.median(r["p99_ms"] for r in rs),
            "median_cpu_us": statistics.median(r["cpu_us"] for r in rs),
            "errors": sum(r["errors"] for r in rs),
            "runs_rps": [round(r["rps"]) for r in rs],
        }
        for kind, rs in runs.items()
    }
    print(f"\n{'contender':10s} {'median req/s':>12s} {'p50 ms':>8s} {'p99 ms':>8s}  runs")
    for kind, s in summary.items():
        print(
            f"{kind:10s} {s['median_rps']:12.0f} {s['median_p50_ms']:8.2f} "
            f"{s['median_p99_ms']:8.2f}  {s['runs_rps']}"
        )
    if "fastapi" in summary and "eventwire" in summary:
        ratio = summary["eventwire"]["median_rps"] / summary["fastapi"]["median_rps"]
        print(f"\neventwire / fastapi = {ratio:.2f}x")
    publish(
        record(
            this,
            "http_gateway",
            kind,
            {k: v for k, v in summ.items() if k != "runs_rps"},
            load_generator=generator,
            repeats=args.repeats,
            duration_s=args.duration,
            connections=args.connections,
        )
        for kind, summ in summary.items()
    )


if __name__ == "__main__":
    main()
