"""C1's loads: the HTTP door's unary TrackEvent as Connect (application/proto) and as
JSON (POST /v1/events), both from h2load over HTTP/1.1 against one server.

The same event in both bodies (the one bench/run.py's gRPC frame carries), no
``event_id`` (the server assigns one, so every request stores a new row), the
same connections and requests in flight; successes are h2load's 2xx (both doors
answer an error with a 4xx or 5xx), and the server's CPU per request is
``utime + stime`` of its process tree over the load window (bench/_cpu.py).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import orjson
from _cpu import cpu_seconds, per_request_us

TRACK_CONNECT = "/analytics.AnalyticsService/TrackEvent"
TRACK_JSON = "/v1/events"
EVENT: dict[str, Any] = {
    "event_name": "page_view",
    "user_id": "user-42",
    "properties": {"plan": "pro", "src": "h2load"},
}


def bodies(tmp: Path) -> dict[str, tuple[str, Path, str]]:
    """workload -> (path, body file, content type)."""
    from eventwire.api import analytics_pb2

    proto = tmp / "track.proto"
    proto.write_bytes(analytics_pb2.TrackEventRequest(**EVENT).SerializeToString())
    json = tmp / "track.json"
    json.write_bytes(
        orjson.dumps(
            {"eventName": EVENT["event_name"], "userId": EVENT["user_id"],
             "properties": EVENT["properties"]}
        )
    )  # fmt: skip
    return {
        "connect-unary": (TRACK_CONNECT, proto, "application/proto"),
        "json-unary": (TRACK_JSON, json, "application/json"),
    }


def http_unary(
    address: str,
    pid: int,
    target: tuple[str, Path, str],
    *,
    connections: int,
    seconds: float,
    cpus: str | None,
) -> dict[str, float]:
    """h2load over HTTP/1.1 (one request in flight per connection); req/s and CPU µs/request."""
    path, body, content_type = target
    url = f"http://{address}{path}"
    pin = ["taskset", "-c", cpus] if cpus else []
    common = [*pin, "h2load", "--h1", "-c", str(connections), "-m", "1", "-d", str(body),
              "-H", f"content-type: {content_type}"]  # fmt: skip
    subprocess.run([*common, "-n", str(connections * 50), url], capture_output=True, check=True)
    before = cpu_seconds(pid)
    out = subprocess.run(
        [*common, "-D", f"{seconds * 1000:.0f}ms", url], capture_output=True, text=True, check=True
    ).stdout
    spent = cpu_seconds(pid) - before
    took = re.search(r"finished in ([\d.]+)s", out)
    done = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded", out)
    codes = re.search(r"status codes: (\d+) 2xx", out)
    if took is None or done is None or codes is None:
        raise RuntimeError(f"cannot parse h2load output:\n{out}")
    ok = float(codes.group(1))
    return {
        "rps": ok / float(took.group(1)),
        "ok": ok,
        "errors": float(done.group(3)) - ok,
        "cpu_us": per_request_us(spent, ok),
    }
