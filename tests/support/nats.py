"""A real ``nats-server -js`` for tests: one node or a 3-node cluster on loopback
ports, each with its own store directory, that a test can SIGKILL and restart.

Tests skip, loudly, when ``nats-server`` is not installed. Ports are taken
free from the kernel and kept across restarts, so clients reconnect.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


def require_nats_server() -> str:
    if not Path(NATS_SERVER).exists():
        pytest.skip(
            "!!! nats-server NOT INSTALLED: the JetStream destination tests DID NOT RUN !!!"
        )
    return NATS_SERVER


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class NatsServer:
    """One ``nats-server -js`` process; :meth:`kill` is SIGKILL, :meth:`start` starts it
    again on the same port and store directory."""

    def __init__(
        self,
        store_dir: Path,
        *,
        name: str = "n1",
        cluster_port: int = 0,
        routes: tuple[int, ...] = (),
    ) -> None:
        self.binary = require_nats_server()
        self.store_dir = store_dir
        self.name = name
        self.port = free_port()
        self.cluster_port = cluster_port
        self.routes = routes
        self._proc: subprocess.Popen[bytes] | None = None
        self.log = store_dir / f"{name}.log"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        argv = [self.binary, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-n", self.name,
                "-sd", str(self.store_dir / self.name), "-l", str(self.log)]  # fmt: skip
        if self.cluster_port:
            routes = ",".join(f"nats-route://127.0.0.1:{p}" for p in self.routes)
            argv += ["--cluster_name", "ew", "--cluster",
                     f"nats://127.0.0.1:{self.cluster_port}", "--routes", routes]  # fmt: skip
        return argv

    def start(self, timeout: float = 10.0) -> NatsServer:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self._proc = subprocess.Popen(
            self.argv(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    if sock.recv(4).startswith(b"INFO"):
                        return self
            except OSError:
                pass
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nats-server did not start; see {self.log}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL, like a crash: no flush, no goodbye to clients."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()

    def stop(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()


@contextmanager
def nats_server(store_dir: Path) -> Iterator[NatsServer]:
    server = NatsServer(store_dir).start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def nats_cluster(store_dir: Path, size: int = 3) -> Iterator[list[NatsServer]]:
    """``size`` JetStream nodes routed to each other on loopback."""
    cluster_ports = [free_port() for _ in range(size)]
    nodes = [
        NatsServer(store_dir, name=f"n{i + 1}", cluster_port=port,
                   routes=tuple(p for p in cluster_ports if p != port))
        for i, port in enumerate(cluster_ports)
    ]  # fmt: skip
    try:
        for node in nodes:
            node.start()
        yield nodes
    finally:
        for node in nodes:
            node.stop()


async def stream_messages(
    url: str | list[str], stream: str
) -> list[tuple[str, dict[str, str], bytes]]:
    """Every message the stream holds: (subject, headers, payload), in stream order."""
    import nats

    nc = await nats.connect(url, connect_timeout=2)
    try:
        jsm = nc.jetstream()
        info = await jsm.stream_info(stream)
        out: list[tuple[str, dict[str, str], bytes]] = []
        first, last = int(info.state.first_seq or 0), int(info.state.last_seq or 0)
        if not info.state.messages:
            return out
        sub = await jsm.subscribe(f"{'eventwire'}.>", stream=stream, ordered_consumer=True)
        try:
            while len(out) < int(info.state.messages):
                msg = await sub.next_msg(timeout=5)
                out.append((msg.subject, dict(msg.headers or {}), msg.data))
        finally:
            await sub.unsubscribe()
        assert first <= last
        return out
    finally:
        await nc.close()
