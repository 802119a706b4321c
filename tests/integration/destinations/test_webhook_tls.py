"""The webhook sink over real TLS: its CA option, the system trust store, mutual TLS."""

from __future__ import annotations

import base64
import os
import ssl

import pytest
from standardwebhooks.webhooks import Webhook

from eventwire.destinations.sink import Retryable
from eventwire.destinations.webhook import WebhookSink
from tests.support.security import Pki, pki  # noqa: F401 - fixture
from tests.support.webhook_receiver import WebhookReceiver, sample_batch

SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()


def server_tls(certs: Pki, *, client_ca: bool = False) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs.server_cert, certs.server_key)
    if client_ca:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(certs.client_ca)
    return context


async def test_https_with_the_ca_file_delivers_a_verifiable_batch(pki: Pki) -> None:  # noqa: F811
    async with WebhookReceiver(tls=server_tls(pki)) as receiver:
        assert receiver.url.startswith("https://")
        sink = WebhookSink.from_url(receiver.url, {"secret": SECRET, "ca_file": str(pki.ca)})
        await sink.deliver(sample_batch(3), timeout=5)
        await sink.close()
    [request] = receiver.received
    Webhook(SECRET).verify(request.body, request.headers)


async def test_a_certificate_the_trust_store_does_not_know_is_retryable(pki: Pki) -> None:  # noqa: F811
    async with WebhookReceiver(tls=server_tls(pki)) as receiver:
        # The system's trust store: trustme's CA is not in it.
        sink = WebhookSink.from_url(receiver.url, {"secret": SECRET})
        with pytest.raises(Retryable, match="CERTIFICATE_VERIFY_FAILED"):
            await sink.deliver(sample_batch(1), timeout=5)
        await sink.close()
        # Nor is a CA file that holds another CA.
        sink = WebhookSink.from_url(receiver.url, {"secret": SECRET, "ca_file": str(pki.rogue_ca)})
        with pytest.raises(Retryable, match="CERTIFICATE_VERIFY_FAILED"):
            await sink.deliver(sample_batch(1), timeout=5)
        await sink.close()
    assert receiver.received == []


async def test_mutual_tls_with_a_client_certificate(pki: Pki) -> None:  # noqa: F811
    options = {"secret": SECRET, "ca_file": str(pki.ca)}
    async with WebhookReceiver(tls=server_tls(pki, client_ca=True)) as receiver:
        without = WebhookSink.from_url(receiver.url, options)
        with pytest.raises(Retryable):
            await without.deliver(sample_batch(1), timeout=5)
        await without.close()
        assert receiver.received == []
        client_cert = {"cert_file": str(pki.client_cert), "key_file": str(pki.client_key)}
        sink = WebhookSink.from_url(receiver.url, options | client_cert)
        await sink.deliver(sample_batch(1), timeout=5)
        await sink.close()
    assert len(receiver.received) == 1


def test_tls_files_are_checked_when_the_sink_is_built(pki: Pki) -> None:  # noqa: F811
    with pytest.raises(ValueError, match="https:// URLs only"):
        WebhookSink.from_url("http://127.0.0.1:9/x", {"secret": SECRET, "ca_file": str(pki.ca)})
    with pytest.raises(ValueError, match="TLS files"):
        WebhookSink.from_url("https://127.0.0.1:9/x", {"secret": SECRET, "ca_file": "/nonexistent"})
    with pytest.raises(ValueError, match="go together"):
        WebhookSink.from_url(
            "https://127.0.0.1:9/x", {"secret": SECRET, "cert_file": str(pki.client_cert)}
        )
