"""HTTP attacks on the gateway while gRPC health is probed: the HTTP half of bench/abuse.py.

Each phase runs for a while in a child process (so the attack does not share
this interpreter's GIL with the prober) while a thread here calls
``grpc.health.v1.Health/Check`` in a loop on a channel opened beforehand:

* ``calm``: no attack (the reference);
* ``big heads``: connections sending 64 MiB request heads, over and over
  (each one whole, then waiting for the answer);
* ``slowloris``: 2,000 connections each sending half a request head;
* ``batch flood``: legitimate load: clients posting 10,000-event JSON batches
  as fast as the gateway takes them (this is what a loop shared with gRPC
  cannot absorb: each batch is tens of ms of parsing and validation).

The server's CPU time per phase comes from /proc (its whole process tree,
``bench/_harness.py``); the batch flood also counts the events the gateway
acknowledged, and the CPU µs each one cost.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import socket
import threading
import time
from typing import Any

from _harness import CpuMeter

from eventwire.testing._abuse import HealthProber


def _connect(address: str) -> socket.socket:
    host, _, port = address.rpartition(":")
    return socket.create_connection((host, int(port)), timeout=10)


def _big_heads(address: str, seconds: float, connections: int) -> dict[str, int]:
    stop = time.monotonic() + seconds
    sent = [0] * connections

    def one(index: int) -> None:
        while time.monotonic() < stop:
            with contextlib.suppress(OSError), _connect(address) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nX-Big: ")
                for _ in range(64):
                    sock.sendall(b"a" * (1 << 20))
                    sent[index] += 1 << 20
                sock.sendall(b"\r\n\r\n")
                sock.settimeout(60)
                sock.recv(4096)  # the answer, whatever it is

    threads = [threading.Thread(target=one, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"bytes_sent": sum(sent)}


def _slowloris(address: str, seconds: float, connections: int) -> dict[str, int]:
    socks = []
    stop = time.monotonic() + seconds
    for _ in range(connections):
        with contextlib.suppress(OSError):
            sock = _connect(address)
            sock.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            socks.append(sock)
    opened = len(socks)
    while time.monotonic() < stop:
        time.sleep(0.05)
    for sock in socks:
        sock.close()
    return {"connections": opened}


def _batch_flood(address: str, seconds: float, clients: int) -> dict[str, int]:
    import httpx
    import orjson

    now = time.time_ns() // 1_000_000
    body = orjson.dumps(
        {
            "events": [
                {"eventName": "view", "userId": f"u{i}", "timestamp": now, "properties": {"a": "b"}}
                for i in range(10_000)
            ]
        }
    )
    stop = time.monotonic() + seconds
    accepted = [0] * clients

    def one(index: int) -> None:
        with httpx.Client(base_url=f"http://{address}", timeout=60) as client:
            while time.monotonic() < stop:
                r = client.post(
                    "/v1/events:batch", content=body, headers={"content-type": "application/json"}
                )
                if r.status_code == 200:
                    accepted[index] += int(r.json()["accepted"])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"events": sum(accepted), "body_bytes": len(body)}


def _idle(address: str, seconds: float, _: int) -> dict[str, int]:
    time.sleep(seconds)
    return {}


PHASES: dict[str, tuple[Any, int]] = {
    "calm": (_idle, 0),
    "big heads": (_big_heads, 4),
    "slowloris": (_slowloris, 2000),
    "batch flood": (_batch_flood, 4),
}


def http_abuse(
    grpc_address: str, http_address: str, pid: int, seconds: float
) -> dict[str, dict[str, Any]]:
    """Every phase of :data:`PHASES` for ``seconds``; gRPC health latency (ms) in each."""
    out: dict[str, dict[str, Any]] = {}
    with multiprocessing.get_context("spawn").Pool(1) as attacker:
        attacker.apply(time.sleep, (0,))
        for name, (attack, size) in PHASES.items():
            with CpuMeter(pid) as cpu, HealthProber(grpc_address, pause=0.005) as probe:
                began = time.perf_counter()
                result = attacker.apply(attack, (http_address, seconds, size))
                elapsed = time.perf_counter() - began
            if result.get("events"):
                result["events_per_s"] = round(result["events"] / elapsed)
                result["cpu_us_per_event"] = round(cpu.seconds * 1e6 / result["events"], 2)
            out[name] = {
                **result,
                "health_calls": len(probe.latencies),
                "health_errors": len(probe.errors),
                "p50_ms": round(probe.quantile(0.5) * 1000, 2),
                "p99_ms": round(probe.quantile(0.99) * 1000, 2),
                "max_ms": round(max(probe.latencies, default=float("nan")) * 1000, 2),
                "server_cpu_s": round(cpu.seconds, 2),
                "seconds": round(elapsed, 2),
            }
            time.sleep(0.5)  # let the server close what the phase left
    return out
