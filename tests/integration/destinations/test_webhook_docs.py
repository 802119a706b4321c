"""docs/webhooks.md's Python examples, run as written against eventwire's real sender."""

from __future__ import annotations

import base64
import http.server
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from eventwire.destinations.sink import Rejected
from eventwire.destinations.webhook import WebhookSink
from eventwire.destinations.webhook_envelope import sign
from tests.support.doc_examples import blocks
from tests.support.paths import ROOT
from tests.support.webhook_receiver import WebhookReceiver, sample_batch

PAGE = ROOT / "docs" / "webhooks.md"


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
def page() -> dict[str, Any]:
    """The page's python blocks, run in order in one namespace, as a reader would paste them."""
    python = [b for b in blocks(PAGE.read_text(encoding="utf-8")) if b.language == "python"]
    assert len(python) == 2, "the page's examples changed: update this test with them"
    namespace: dict[str, Any] = {"__name__": "webhooks_page"}
    for block in python:
        exec(compile(block.body, f"{PAGE}:{block.line}", "exec"), namespace)  # noqa: S102
    return namespace


@contextmanager
def page_receiver(page: dict[str, Any], secret: str) -> Iterator[tuple[str, list[Any]]]:
    """The page's ``Receiver`` on a loopback port; what its ``process`` was given."""
    processed: list[Any] = []
    page["SECRET"] = secret
    page["process"] = processed.append
    page["Receiver"].log_message = lambda *_args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), page["Receiver"])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/webhooks", processed
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_verify_webhook_accepts_what_eventwire_sends_and_nothing_else(
    page: dict[str, Any],
) -> None:
    secret = new_secret()
    async with WebhookReceiver() as receiver:
        sink = WebhookSink(receiver.url, secret=f"{new_secret()},{secret}")
        await sink.deliver(sample_batch(4), timeout=5)
        await sink.close()
    [request] = receiver.received
    verify, invalid = page["verify_webhook"], page["InvalidWebhook"]
    batch = verify(secret, request.headers, request.body)
    assert [entry["id"] for entry in batch["data"]] == [i.key for i in sample_batch(4)]
    with pytest.raises(invalid, match="no valid signature"):
        verify(new_secret(), request.headers, request.body)
    with pytest.raises(invalid, match="no valid signature"):
        verify(secret, request.headers, request.body.replace(b"acme", b"acne"))
    with pytest.raises(invalid, match="missing header"):
        verify(secret, {"webhook-id": request.webhook_id}, request.body)
    # A genuine signature on a stale timestamp: a replay.
    stale = int(time.time()) - 3600
    replayed = request.headers | {
        "webhook-timestamp": str(stale),
        "webhook-signature": sign(
            [base64.b64decode(secret.removeprefix("whsec_"))],
            request.webhook_id,
            stale,
            request.body,
        ),
    }
    with pytest.raises(invalid, match="too far from now"):
        verify(secret, replayed, request.body)


async def test_the_page_receiver_processes_each_batch_once_and_refuses_strangers(
    page: dict[str, Any],
) -> None:
    secret = new_secret()
    with page_receiver(page, secret) as (url, processed):
        sink = WebhookSink(url, secret=secret)
        first, second = sample_batch(5), sample_batch(5, start=5)
        await sink.deliver(first, timeout=5)
        await sink.deliver(first, timeout=5)  # a redelivery: same rows, same webhook-id
        await sink.deliver(second, timeout=5)
        await sink.close()
        stranger = WebhookSink(url, secret=new_secret())
        with pytest.raises(Rejected, match="HTTP 401"):
            await stranger.deliver(sample_batch(1, start=99), timeout=5)
        await stranger.close()
    assert [entry["id"] for entry in processed] == [i.key for i in first + second]
