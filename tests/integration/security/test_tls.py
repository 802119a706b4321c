"""TLS and mTLS on both front doors, with certificates made for this run (trustme)."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import pytest

from eventwire.api import analytics_pb2, analytics_pb2_grpc
from eventwire.client._credentials import channel_credentials, credentials
from eventwire.config import ServerConfig
from eventwire.runtime import cli
from eventwire.runtime.server import Server
from tests.support.security import ACME, Leaks, Pki, bearer, traced_server

EVENT = analytics_pb2.TrackEventRequest(event_name="tls")


async def track(
    channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...] | None = None
) -> bool:
    reply = await analytics_pb2_grpc.AnalyticsServiceStub(channel).TrackEvent(
        EVENT, timeout=5, metadata=metadata
    )
    return bool(reply.success)


async def refused(channel: grpc.aio.Channel) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await track(channel)
    return info.value.code()


@pytest.fixture
async def tls_server(leaks: Leaks, pki: Pki, tmp_path: Path) -> AsyncIterator[Server]:
    async with traced_server(
        leaks,
        tls_cert=str(pki.server_cert),
        tls_key=str(pki.server_key),
        store=f"sqlite:///{tmp_path / 'events.db'}",
    ) as srv:
        yield srv


@pytest.fixture
async def mtls_server(
    leaks: Leaks, pki: Pki, tmp_path: Path, token_file: Path
) -> AsyncIterator[Server]:
    async with traced_server(
        leaks,
        tls_cert=str(pki.server_cert),
        tls_key=str(pki.server_key),
        tls_client_ca=str(pki.client_ca),
        auth_tokens=str(token_file),
        store=f"sqlite:///{tmp_path / 'events.db'}",
    ) as srv:
        yield srv


async def test_tls_serves_clients_that_trust_its_ca(tls_server: Server, pki: Pki) -> None:
    creds = channel_credentials(ca=pki.ca)
    async with grpc.aio.secure_channel(tls_server.address, creds) as ch:
        assert await track(ch)


async def test_tls_refuses_plaintext_and_clients_that_trust_another_ca(
    tls_server: Server, pki: Pki
) -> None:
    async with grpc.aio.insecure_channel(tls_server.address) as ch:
        assert await refused(ch) == grpc.StatusCode.UNAVAILABLE
    async with grpc.aio.secure_channel(
        tls_server.address, channel_credentials(ca=pki.rogue_ca)
    ) as ch:
        assert await refused(ch) == grpc.StatusCode.UNAVAILABLE


async def test_mtls_serves_a_client_with_a_certificate_and_token(
    mtls_server: Server, pki: Pki
) -> None:
    creds = credentials(ca=pki.ca, cert=pki.client_cert, key=pki.client_key, token=ACME)
    async with grpc.aio.secure_channel(mtls_server.address, creds) as ch:
        assert await track(ch)


@pytest.mark.parametrize("client", ["no certificate", "rogue CA", "plaintext"])
async def test_mtls_refuses_clients_without_a_trusted_certificate(
    mtls_server: Server, pki: Pki, client: str
) -> None:
    if client == "plaintext":
        channel = grpc.aio.insecure_channel(mtls_server.address)
    elif client == "no certificate":
        channel = grpc.aio.secure_channel(mtls_server.address, channel_credentials(ca=pki.ca))
    else:
        creds = channel_credentials(ca=pki.ca, cert=pki.rogue_cert, key=pki.rogue_key)
        channel = grpc.aio.secure_channel(mtls_server.address, creds)
    async with channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await track(channel, metadata=bearer(ACME))
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def _context(pki: Pki, *, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))
    if cert is not None and key is not None:
        context.load_cert_chain(str(cert), str(key))
    return context


async def test_gateway_serves_https_with_mtls(mtls_server: Server, pki: Pki) -> None:
    url = f"https://127.0.0.1:{mtls_server.http_port}/v1/events"
    context = _context(pki, cert=pki.client_cert, key=pki.client_key)
    async with httpx.AsyncClient(verify=context, timeout=5) as http:
        reply = await http.post(
            url, json={"eventName": "tls"}, headers={"authorization": f"Bearer {ACME}"}
        )
    assert reply.status_code == 200, reply.text
    assert reply.json()["success"] is True


async def test_gateway_offers_http2_over_tls_for_connect(mtls_server: Server, pki: Pki) -> None:
    url = f"https://127.0.0.1:{mtls_server.http_port}/analytics.AnalyticsService/TrackEvent"
    context = _context(pki, cert=pki.client_cert, key=pki.client_key)
    async with httpx.AsyncClient(verify=context, timeout=5, http2=True) as http:
        reply = await http.post(
            url, json={"eventName": "tls"}, headers={"authorization": f"Bearer {ACME}"}
        )
    assert reply.http_version == "HTTP/2"  # chosen by ALPN
    assert reply.status_code == 200, reply.text
    assert reply.json()["success"] is True


@pytest.mark.parametrize("client", ["no certificate", "rogue CA", "plaintext"])
async def test_gateway_refuses_clients_without_a_trusted_certificate(
    mtls_server: Server, pki: Pki, client: str
) -> None:
    scheme = "http" if client == "plaintext" else "https"
    url = f"{scheme}://127.0.0.1:{mtls_server.http_port}/healthz"
    if client == "rogue CA":
        context = _context(pki, cert=pki.rogue_cert, key=pki.rogue_key)
    else:
        context = _context(pki)
    async with httpx.AsyncClient(verify=context, timeout=5) as http:
        with pytest.raises(httpx.TransportError):
            await http.get(url)


async def test_metrics_listener_stays_plaintext(tls_server: Server) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        reply = await http.get(f"http://127.0.0.1:{tls_server.metrics_port}/metrics")
    assert reply.status_code == 200


async def test_cli_talks_mtls_with_a_token_from_the_environment(
    mtls_server: Server, pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {
        "EVENTWIRE_CA": str(pki.ca),
        "EVENTWIRE_CERT": str(pki.client_cert),
        "EVENTWIRE_KEY": str(pki.client_key),
        "EVENTWIRE_TOKEN": ACME,
    }
    argv = ["track", "signup", "--target", mtls_server.address, "--event-id", "cli-1"]
    assert await asyncio.to_thread(cli.main, argv, env) == cli.EXIT_OK
    assert "event_id: cli-1" in capsys.readouterr().out
    flags = ["--ca", str(pki.ca), "--cert", str(pki.client_cert), "--key", str(pki.client_key)]
    argv = ["count", "--target", mtls_server.address, *flags, "--token", ACME]
    assert await asyncio.to_thread(cli.main, argv, {}) == cli.EXIT_OK
    assert "count: 1" in capsys.readouterr().out
    # Without the client certificate the handshake fails: unreachable, exit 3.
    argv = ["count", "--target", mtls_server.address, "--ca", str(pki.ca), "--timeout", "2"]
    assert await asyncio.to_thread(cli.main, argv, {}) == cli.EXIT_UNREACHABLE


def test_tls_settings_are_checked_before_serving(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="tls_cert and tls_key go together"):
        ServerConfig(tls_cert=str(pki.server_cert))
    with pytest.raises(ValueError, match="needs tls_cert"):
        ServerConfig(tls_client_ca=str(pki.client_ca))
    with pytest.raises(ValueError, match="unusable TLS"):
        # A key that does not belong to the certificate.
        Server(ServerConfig(tls_cert=str(pki.server_cert), tls_key=str(pki.client_key)))
    serve = [sys.executable, "-m", "eventwire", "serve", "--store", f"sqlite:///{tmp_path}/e.db"]
    done = subprocess.run(
        [*serve, "--tls-cert", str(tmp_path / "missing.pem"), "--tls-key", str(pki.server_key)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "cannot read --tls-cert" in done.stderr
