"""Hostile HTTP clients get clear refusals, hold nothing for long, and never stall gRPC.

A real ``eventwire serve`` process with small limits takes raw sockets that
send endless or slow heads, stall bodies, declare bodies above the limit, flood
connections, and exhaust the process's descriptors (``prlimit``); a gRPC
client keeps probing health meanwhile. Speed figures: ``bench/abuse.py``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import orjson
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from eventwire.testing._abuse import HealthProber
from eventwire.testing._process import ServerProcess

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
IDLE_TIMEOUT = 2.0
MAX_BODY = 64 * 1024
MAX_HEADER = 16 * 1024
CAP = 60


def _spawn(tmp: Path, *extra: str, launcher: tuple[str, ...] = ()) -> ServerProcess:
    return ServerProcess(
        "--store",
        f"sqlite:///{tmp / 'e.db'}",
        "--sqlite-synchronous",
        "normal",
        *extra,
        launcher=launcher,
    ).start()


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = _spawn(
        tmp_path_factory.mktemp("hostile"),
        *("--http-header-timeout", str(HEADER_TIMEOUT), "--http-body-timeout", str(BODY_TIMEOUT)),
        *("--http-idle-timeout", str(IDLE_TIMEOUT), "--http-max-body-bytes", str(MAX_BODY)),
        *("--http-max-header-bytes", str(MAX_HEADER), "--http-max-connections", str(CAP)),
    )
    try:
        yield proc
    finally:
        proc.kill()


def _connect(address: str) -> socket.socket:
    host, _, port = address.rpartition(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _read_all(sock: socket.socket, timeout: float = 15.0) -> bytes:
    """Everything the server sends until it closes (or ``timeout``)."""
    sock.settimeout(timeout)
    got = b""
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            got += chunk
    return got


def _status(reply: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = reply.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"content-type: application/json" in head.lower(), head
    assert b"connection: close" in head.lower(), head
    return status, orjson.loads(body)


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _until(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_an_endless_head_is_431_and_is_not_read_whole(target: ServerProcess) -> None:
    with _connect(target.http_address) as sock:
        replies: list[bytes] = []
        reader = threading.Thread(target=lambda: replies.append(_read_all(sock)))
        reader.start()
        sent = 0
        with contextlib.suppress(OSError):  # the server hangs up long before the end
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
            chunk = b"a" * (1 << 20)
            for _ in range(64):
                sock.sendall(chunk)
                sent += len(chunk)
        reader.join()
    status, body = _status(replies[0])
    assert status == 431
    assert body["code"] == 8  # RESOURCE_EXHAUSTED, as gRPC answers oversize metadata
    assert str(MAX_HEADER) in str(body["message"])
    assert sent < 32 << 20, "the server read far past its limit"


def test_slow_heads_are_cut_off_with_408_and_their_descriptors_return(
    target: ServerProcess,
) -> None:
    before = _fds(target.pid)
    socks = [_connect(target.http_address) for _ in range(CAP // 2)]
    try:
        for sock in socks:
            sock.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        replies = [_read_all(sock) for sock in socks]
    finally:
        for sock in socks:
            sock.close()
    for reply in replies:
        status, body = _status(reply)
        assert (status, body["code"]) == (408, 4)  # DEADLINE_EXCEEDED
    assert _until(lambda: _fds(target.pid) <= before + 2), (before, _fds(target.pid))


def test_a_silent_connection_is_closed_after_the_idle_timeout(target: ServerProcess) -> None:
    with _connect(target.http_address) as sock:
        assert _read_all(sock) == b""  # closed, nothing said: nothing was asked
    with _connect(target.http_address) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = _read_all(sock)  # the answer, then the close after the idle timeout
    assert reply.startswith(b"HTTP/1.1 200"), reply


def test_a_stalled_body_is_408(target: ServerProcess) -> None:
    with _connect(target.http_address) as sock:
        sock.sendall(
            b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"eventName":'
        )
        status, body = _status(_read_all(sock))
    assert (status, body["code"]) == (408, 4)


def test_a_declared_oversize_body_is_413_before_it_is_sent(target: ServerProcess) -> None:
    with _connect(target.http_address) as sock:
        sock.sendall(
            b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Expect: 100-continue\r\nContent-Length: 100000000\r\n\r\n"
        )
        sock.settimeout(10)
        first = sock.recv(65536)  # no body sent, no 100 Continue awaited: the answer is there
    status, body = _status(first)
    assert (status, body["code"]) == (413, 8)
    assert "100000000" in str(body["message"])


def test_a_client_that_sends_its_whole_oversize_body_reads_the_413(target: ServerProcess) -> None:
    # httpx writes the whole body before it reads; a close with the body unread
    # would reset the connection under it and lose the answer.
    for _ in range(3):
        r = httpx.post(
            f"http://{target.http_address}/v1/events",
            content=b"{" + b" " * (4 * MAX_BODY) + b"}",
            headers={"content-type": "application/json", "connection": "close"},
            timeout=20,
        )
        assert r.status_code == 413, r.text
        assert r.json()["code"] == 8


def test_connections_beyond_the_cap_get_503_and_it_recovers(target: ServerProcess) -> None:
    held = [_connect(target.http_address) for _ in range(CAP)]
    try:
        # Keep them inside the idle timeout: each sends a request now and then.
        def busy() -> bool:
            with _connect(target.http_address) as extra:
                reply = _read_all(extra, timeout=5)
            if not reply:
                return False
            status, body = _status(reply)
            assert (status, body["code"]) == (503, 14)  # UNAVAILABLE: retry later
            assert b"retry-after: 1" in reply.lower()
            return True

        assert _until(busy, timeout=IDLE_TIMEOUT)
    finally:
        for sock in held:
            sock.close()

    def served() -> bool:
        return httpx.get(f"http://{target.http_address}/healthz", timeout=5).status_code == 200

    assert _until(served)


def _big_heads(address: str, stop: threading.Event) -> None:
    while not stop.is_set():
        with contextlib.suppress(OSError), _connect(address) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nX-Big: ")
            for _ in range(64):
                sock.sendall(b"a" * (1 << 20))


def test_grpc_is_not_stalled_by_an_http_attack(target: ServerProcess) -> None:
    stop = threading.Event()
    attackers = [
        threading.Thread(target=_big_heads, args=(target.http_address, stop)) for _ in range(4)
    ]
    slow: list[socket.socket] = []
    with HealthProber(target.address) as probe:
        for thread in attackers:
            thread.start()
        try:
            for _ in range(3 * CAP):  # beyond the cap: most are refused at once
                with contextlib.suppress(OSError):
                    sock = _connect(target.http_address)
                    sock.sendall(b"GET / HTTP/1.1\r\nX-Slow: ")
                    slow.append(sock)
            assert _until(lambda: len(probe.latencies) >= 300, timeout=60)
        finally:
            stop.set()
            for thread in attackers:
                thread.join()
            for sock in slow:
                sock.close()
    assert not probe.errors, probe.errors
    # A robust bound, not a benchmark: before the HTTP side had limits and its
    # own loop, one 64 MiB head held the gRPC loop for 0.6 to 4 s.
    assert max(probe.latencies) < 1.0, sorted(probe.latencies)[-5:]


def test_exhausted_descriptors_refuse_new_connections_and_recover(tmp_path: Path) -> None:
    proc = _spawn(tmp_path, launcher=("prlimit", "--nofile=256:256", "--"))
    try:
        with (
            HealthProber(proc.address) as probe,
            httpx.Client(base_url=f"http://{proc.http_address}", timeout=10) as kept,
        ):
            assert kept.get("/healthz").status_code == 200  # a connection held from before
            flood: list[socket.socket] = []
            try:
                for _ in range(1000):
                    with contextlib.suppress(OSError):
                        flood.append(_connect(proc.http_address))
                # Established calls keep working, on both doors.
                assert kept.get("/healthz").status_code == 200
                calls = len(probe.latencies)
                assert _until(lambda: len(probe.latencies) > calls + 5)
                # New connections are refused with an answer, not left hanging.
                with _connect(proc.http_address) as late:
                    reply = _read_all(late, timeout=10)
                assert reply.startswith(b"HTTP/1.1 503"), reply[:100]
                assert _fds(proc.pid) < 256
            finally:
                for sock in flood:
                    sock.close()
        assert not probe.errors, probe.errors

        def recovered() -> bool:
            r = httpx.get(f"http://{proc.http_address}/healthz", timeout=5)
            return r.status_code == 200

        assert _until(recovered)
        with grpc.insecure_channel(proc.address) as channel:
            stub: Any = health_pb2_grpc.HealthStub(channel)
            reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        assert proc._require().poll() is None, "the server survived"
    finally:
        proc.kill()
