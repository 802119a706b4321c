"""``--health-port``: grpc.health.v1.Health on a port of its own, reporting
exactly what the main port reports, draining included."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from eventwire.client._credentials import channel_credentials
from eventwire.testing import running_server
from eventwire.testing._process import ServerProcess
from tests.support.probes import NOT_SERVING, SERVING
from tests.support.security import Pki, pki  # noqa: F401 - fixture

SERVICES = ("", "analytics.AnalyticsService", "telemetry.TelemetryService")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stub(channel: grpc.aio.Channel) -> Any:
    # grpcio-health-checking's stubs are typed for sync channels only.
    return health_pb2_grpc.HealthStub(channel)


async def statuses(channel: grpc.aio.Channel) -> dict[str, int]:
    """Every service List reports, with the status Check gives for each."""
    listed = await stub(channel).List(health_pb2.HealthListRequest(), timeout=5)  # type: ignore[attr-defined]
    reported = {name: s.status for name, s in listed.statuses.items()}
    assert set(SERVICES) <= set(reported)
    for name, status in reported.items():
        checked = await stub(channel).Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
        assert checked.status == status
    return reported


async def test_probe_port_reports_what_the_main_port_does_until_it_drains(
    tmp_path: Path,
) -> None:
    async with (
        running_server(store=f"sqlite:///{tmp_path / 'e.db'}", health_port=free_port()) as srv,
        grpc.aio.insecure_channel(srv.address) as main,
        grpc.aio.insecure_channel(f"127.0.0.1:{srv.health_port}") as probe,
    ):
        assert srv.health_port != srv.port
        assert await statuses(probe) == await statuses(main)
        assert set((await statuses(probe)).values()) == {SERVING}
        watches = [
            stub(ch).Watch(health_pb2.HealthCheckRequest(service="")) for ch in (main, probe)
        ]
        for watch in watches:
            assert (await watch.read()).status == SERVING
        stopping = asyncio.create_task(srv.stop())
        for watch in watches:
            assert (await watch.read()).status == NOT_SERVING
        await stopping


async def test_probe_port_serves_health_alone(tmp_path: Path) -> None:
    async with (
        running_server(store=f"sqlite:///{tmp_path / 'e.db'}", health_port=free_port()) as srv,
        grpc.aio.insecure_channel(f"127.0.0.1:{srv.health_port}") as probe,
    ):
        track: Any = probe.unary_unary("/analytics.AnalyticsService/TrackEvent")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await track(b"", timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_probe_port_is_off_by_default(tmp_path: Path) -> None:
    async with running_server(store=f"sqlite:///{tmp_path / 'e.db'}") as srv:
        assert srv.health_port == 0


async def test_probe_port_speaks_the_grpc_ports_tls(
    tmp_path: Path,
    pki: Pki,  # noqa: F811 - the fixture
) -> None:
    async with running_server(
        store=f"sqlite:///{tmp_path / 'e.db'}",
        health_port=free_port(),
        tls_cert=str(pki.server_cert),
        tls_key=str(pki.server_key),
    ) as srv:
        target = f"127.0.0.1:{srv.health_port}"
        async with grpc.aio.secure_channel(target, channel_credentials(ca=pki.ca)) as probe:
            assert set((await statuses(probe)).values()) == {SERVING}
        async with grpc.aio.insecure_channel(target) as plaintext:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub(plaintext).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_taken_probe_port_fails_startup(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # The flags not under test are off or ephemeral, so only the probe port can clash.
        argv = [sys.executable, "-m", "eventwire", "serve", "--health-port", str(port)]
        argv += ["--store", f"sqlite:///{tmp_path / 'e.db'}", "--address", "127.0.0.1:0"]
        ran = subprocess.run(
            [*argv, "--http-address", "", "--metrics-address", ""],
            capture_output=True,
            timeout=60,
            check=False,
        )
    assert ran.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port} (--health-port)" in ran.stderr.decode()


def test_workers_share_the_probe_port_as_they_share_the_grpc_port(tmp_path: Path) -> None:
    port = free_port()
    server = ServerProcess(
        "--workers", "2", "--store", f"sqlite:///{tmp_path / 'e.db'}", "--health-port", str(port)
    ).start()
    try:
        deadline = time.monotonic() + 30
        while len(serving := [m for m in list(server.logs) if m.get("msg") == "serving"]) < 2:
            assert time.monotonic() < deadline, "both workers serve"
            time.sleep(0.05)
        # Without SO_REUSEPORT the second worker could not have bound it.
        assert [line["health_port"] for line in serving] == [port, port]
        assert len({line["pid"] for line in serving}) == 2
        for _ in range(10):  # new connections, spread over the workers by the kernel
            options = [("grpc.use_local_subchannel_pool", 1)]
            with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
                sync: Any = health_pb2_grpc.HealthStub(channel)  # its stubs lack method types
                reply = sync.Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert reply.status == SERVING
        server.terminate()
        assert server.wait(60) == 0
    finally:
        server.kill()
