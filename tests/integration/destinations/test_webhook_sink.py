"""The webhook sink against a real HTTP receiver on a loopback port.

Signatures are checked with the reference implementation (the
``standardwebhooks`` package), not with our own signing code; statuses,
timeouts, cut connections and oversized bodies are produced for real by the
receiver in tests/support/webhook_receiver.py.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import logging
import os
import time
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from eventwire.destinations.sink import Rejected, Retryable, Sink
from eventwire.destinations.webhook import EXCERPT_CHARS, MAX_RETRY_AFTER, WebhookSink
from tests.support.webhook_receiver import (
    Answer,
    Chaos,
    Drop,
    Endless,
    Hang,
    Received,
    WebhookReceiver,
    always,
    sample_batch,
    script,
)


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
def secret() -> str:
    return new_secret()


def verify(secret: str, request: Received) -> Any:
    """The reference verifier's verdict on one recorded request (raises if it fails)."""
    return Webhook(secret).verify(request.body, request.headers)


async def test_a_batch_arrives_signed_in_commit_order_with_payloads_verbatim(secret: str) -> None:
    batch = sample_batch(12)
    async with WebhookReceiver() as receiver:
        sink: Sink = WebhookSink.from_url(receiver.url, {"secret": secret})
        await sink.start()
        try:
            await sink.deliver(batch, timeout=5)
        finally:
            await sink.close()
    [request] = receiver.received
    assert request.method == "POST"
    assert request.path == "/hook"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("eventwire/")
    envelope = verify(secret, request)
    assert envelope == request.json()
    assert request.json()["type"] == "eventwire.batch"
    entries = request.json()["data"]
    assert [(e["type"], e["id"], e["tenant"], e["name"]) for e in entries] == [
        (i.kind, i.key, i.tenant, i.name) for i in batch
    ]
    # Each payload is embedded byte for byte, not re-serialised.
    for item in batch:
        assert item.payload in request.body
    assert entries[0]["committedAt"] == "2025-12-06T05:46:40.000Z"
    assert int(request.headers["webhook-timestamp"]) == pytest.approx(time.time(), abs=5)


async def test_a_wrong_secret_or_a_changed_body_does_not_verify(secret: str) -> None:
    async with WebhookReceiver() as receiver:
        sink = WebhookSink(receiver.url, secret=secret)
        await sink.deliver(sample_batch(3), timeout=5)
        await sink.close()
    [request] = receiver.received
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(request.body.replace(b"evt-1", b"evt-9"), request.headers)


async def test_two_secrets_sign_twice_so_a_receiver_with_either_verifies() -> None:
    old, new = new_secret(), new_secret()
    async with WebhookReceiver() as receiver:
        sink = WebhookSink.from_url(receiver.url, {"secret": f"{new},{old}"})
        await sink.deliver(sample_batch(2), timeout=5)
        await sink.close()
    [request] = receiver.received
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    verify(old, request)
    verify(new, request)


async def test_a_redelivered_batch_keeps_its_webhook_id_across_retries_and_restarts(
    secret: str,
) -> None:
    batch = sample_batch(7)
    responder = script(Answer(503), Hang(), Drop(), Answer(500), then=Answer(200))
    async with WebhookReceiver(responder) as receiver:
        first = WebhookSink(receiver.url, secret=secret)
        for _ in range(3):
            with pytest.raises(Retryable):
                await first.deliver(batch, timeout=0.5)
        await first.close()
        # A new sink, as after a crash and a re-read of the same rows.
        second = WebhookSink(receiver.url, secret=secret)
        with pytest.raises(Retryable):
            await second.deliver(batch, timeout=5)
        await second.deliver(batch, timeout=5)
        await second.deliver(sample_batch(7, start=7), timeout=5)
        await second.close()
    attempts, other = receiver.received[:5], receiver.received[5]
    assert len({r.webhook_id for r in attempts}) == 1
    assert len({r.body for r in attempts}) == 1
    for request in attempts:
        verify(secret, request)
    assert other.webhook_id != attempts[0].webhook_id
    assert "." not in other.webhook_id


async def test_the_timestamp_is_fresh_on_each_attempt(secret: str) -> None:
    # Slow on purpose (a second and a bit): the header is in whole seconds.
    async with WebhookReceiver(script(Answer(503))) as receiver:
        sink = WebhookSink(receiver.url, secret=secret)
        with pytest.raises(Retryable):
            await sink.deliver(sample_batch(1), timeout=5)
        await asyncio.sleep(1.1)
        await sink.deliver(sample_batch(1), timeout=5)
        await sink.close()
    first, second = receiver.received
    assert int(second.headers["webhook-timestamp"]) > int(first.headers["webhook-timestamp"])
    assert first.headers["webhook-signature"] != second.headers["webhook-signature"]
    verify(secret, second)


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
async def test_2xx_is_delivered(secret: str, status: int) -> None:
    async with WebhookReceiver(always(Answer(status, body=b"thanks"))) as receiver:
        sink = WebhookSink(receiver.url, secret=secret)
        await sink.deliver(sample_batch(1), timeout=5)
        await sink.close()
    assert len(receiver.received) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 413, 422])
async def test_other_4xx_rejects_the_batch_with_status_and_excerpt(
    secret: str, status: int
) -> None:
    body = b'{"error":"field properties.n must be a string"}'
    async with WebhookReceiver(always(Answer(status, body=body))) as receiver:
        sink = WebhookSink(receiver.url, secret=secret)
        with pytest.raises(Rejected) as caught:
            await sink.deliver(sample_batch(1), timeout=5)
        await sink.close()
    assert f"HTTP {status}" in str(caught.value)
    assert "properties.n must be a string" in str(caught.value)
    assert type(caught.value) is Rejected


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
async def test_408_429_and_5xx_are_retryable(secret: str, status: int) -> None:
    async with WebhookReceiver(always(Answer(status))) as receiver:
        sink = WebhookSink(receiver.url, secret=secret)
        with pytest.raises(Retryable) as caught:
            await sink.deliver(sample_batch(1), timeout=5)
        await sink.close()
    assert f"HTTP {status}" in str(caught.value)
    assert caught.value.retry_after is None


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_redirects_are_not_followed(secret: str, status: int) -> None:
    async with WebhookReceiver() as receiver:
        receiver.responder = always(Answer(status, {"location": receiver.url + "/moved"}))
        sink = WebhookSink(receiver.url, secret=secret)
        with pytest.raises(Retryable, match="redirects are not followed"):
            await sink.deliver(sample_batch(1), timeout=5)
        await sink.close()
    assert [r.path for r in receiver.received] == ["/hook"]


async def test_retry_after_in_seconds_and_as_an_http_date(secret: str) -> None:
    in_a_minute = email.utils.formatdate(time.time() + 60, usegmt=True)
    answers = script(
        Answer(503, {"retry-after": "7"}),
        Answer(429, {"retry-after": in_a_minute}),
        Answer(503, {"retry-after": "99999999"}),
        Answer(503, {"retry-after": "soon"}),
    )
    async with WebhookReceiver(answers) as receiver:
        sink = WebhookSink(receiver.url, secret=secret)
        waits = []
        for _ in range(4):
            with pytest.raises(Retryable) as caught:
                await sink.deliver(sample_batch(1), timeout=5)
            waits.append(caught.value.retry_after)
        await sink.close()
    assert waits[0] == 7.0
    assert waits[1] is not None
    assert 55 <= waits[1] <= 60
    assert waits[2] == MAX_RETRY_AFTER
    assert waits[3] is None


async def test_a_receiver_that_hangs_times_out_and_the_sink_recovers(secret: str) -> None:
    async with WebhookReceiver(script(Hang())) as receiver:
        sink = WebhookSink(receiver.url, secret=secret)
        with pytest.raises(Retryable, match=r"within 0\.3 s|Timeout"):
            await sink.deliver(sample_batch(2), timeout=0.3)
        await sink.deliver(sample_batch(2), timeout=5)
        await sink.close()
    assert len(receiver.received) == 2
    assert receiver.received[0].webhook_id == receiver.received[1].webhook_id


async def test_a_cut_connection_and_a_refused_one_are_retryable(secret: str) -> None:
    async with WebhookReceiver(always(Drop())) as receiver:
        sink = WebhookSink(receiver.url, secret=secret)
        with pytest.raises(Retryable):
            await sink.deliver(sample_batch(1), timeout=5)
        await sink.close()
        url = receiver.url
    # The receiver is gone: its port refuses connections now.
    sink = WebhookSink(url, secret=secret)
    with pytest.raises(Retryable, match="ConnectError"):
        await sink.deliver(sample_batch(1), timeout=5)
    await sink.close()


async def test_a_status_counts_even_when_its_body_never_ends(secret: str) -> None:
    async with WebhookReceiver(always(Endless(200, stall=True))) as receiver:
        sink = WebhookSink(receiver.url, secret=secret)
        await sink.deliver(sample_batch(1), timeout=1.0)
        receiver.responder = always(Endless(400, stall=True))
        with pytest.raises(Rejected, match="HTTP 400"):
            await sink.deliver(sample_batch(1), timeout=1.0)
        await sink.close()


async def test_response_bodies_are_read_up_to_a_cap(secret: str) -> None:
    huge = 64 << 20
    async with WebhookReceiver(always(Endless(200, size=huge))) as receiver:
        sink = WebhookSink(receiver.url, secret=secret, response_cap=16 << 10)
        await sink.deliver(sample_batch(1), timeout=30)
        receiver.responder = always(Answer(500, body=b"E" * (1 << 20)))
        with pytest.raises(Retryable) as caught:
            await sink.deliver(sample_batch(1), timeout=30)
        await sink.close()
        await receiver.wait_for(lambda r: r.received[0].body_bytes_sent < huge, timeout=10)
    # The sink hung up after its cap: the receiver could push only what the
    # loopback buffers hold (a few MB), not the 64 MB it meant to.
    assert receiver.received[0].body_bytes_sent < 16 << 20
    assert str(caught.value).count("E") <= EXCERPT_CHARS
    assert len(str(caught.value)) < EXCERPT_CHARS + 200


async def test_no_secret_reaches_a_log_line_an_error_or_a_repr(
    secret: str, caplog: pytest.LogCaptureFixture
) -> None:
    token = "tok-" + base64.b64encode(os.urandom(12)).decode()
    url_password = "pw-" + os.urandom(6).hex()
    key_b64 = secret.removeprefix("whsec_")
    caplog.set_level(logging.DEBUG)
    errors: list[str] = []
    async with WebhookReceiver() as receiver:
        # The receiver echoes what it got, as careless error pages do.
        receiver.responder = lambda request: Answer(400, body=json.dumps(request.headers).encode())
        address = receiver.url.replace("http://", f"http://hooks:{url_password}@")
        sink = WebhookSink.from_url(address, {"secret": secret, "header.X-Api-Key": token})
        with pytest.raises(Rejected) as rejected:
            await sink.deliver(sample_batch(1), timeout=5)
        errors.append(str(rejected.value))
        receiver.responder = always(Hang())
        with pytest.raises(Retryable) as timed_out:
            await sink.deliver(sample_batch(1), timeout=0.2)
        errors.append(str(timed_out.value))
        errors.append(repr(sink))
        await sink.close()
    # The receiver did get them: the test would prove nothing otherwise.
    basic = base64.b64encode(f"hooks:{url_password}".encode()).decode()
    assert receiver.received[0].headers["x-api-key"] == token
    assert receiver.received[0].headers["authorization"] == f"Basic {basic}"
    assert '"x-api-key": "***"' in errors[0]
    shown = "\n".join([*errors, caplog.text])
    for secret_text in (secret, key_b64, token, url_password, basic):
        assert secret_text not in shown


async def test_a_chaotic_receiver_gets_every_batch_with_retries(secret: str) -> None:
    """The relay's loop in miniature: retry Retryable until delivered, skip Rejected."""
    batches = [sample_batch(5, start=5 * n) for n in range(12)]
    poison = batches[4][2].key
    chaos = Chaos(unavailable_every=3, hang_every=7, reject_ids={poison})
    rejected: list[str] = []
    async with WebhookReceiver(chaos) as receiver:
        sink = WebhookSink(receiver.url, secret=secret)
        for batch in batches:
            for _attempt in range(10):
                try:
                    await sink.deliver(batch, timeout=0.3)
                    break
                except Retryable:
                    continue
                except Rejected:
                    rejected.append(batch[0].key)
                    break
        await sink.close()
    delivered = {e["id"] for r in receiver.answered(204) for e in r.json()["data"]}
    expected = {i.key for b in batches for i in b} - {i.key for i in batches[4]}
    assert delivered == expected
    assert rejected == [batches[4][0].key]
    by_id: dict[str, set[bytes]] = {}
    for request in receiver.received:
        verify(secret, request)
        by_id.setdefault(request.webhook_id, set()).add(request.body)
    assert len(by_id) == len(batches)
    assert all(len(bodies) == 1 for bodies in by_id.values())
    assert len(receiver.received) > len(batches)  # the faults did happen


async def test_one_pooled_connection_carries_batch_after_batch(secret: str) -> None:
    async with WebhookReceiver() as receiver:
        sink = WebhookSink(receiver.url, secret=secret)
        for n in range(5):
            await sink.deliver(sample_batch(3, start=3 * n), timeout=5)
        assert receiver.connections == 1
        # A timed-out request's connection is not reused: its answer may still come.
        receiver.responder = script(Hang())
        with pytest.raises(Retryable):
            await sink.deliver(sample_batch(1), timeout=0.2)
        await sink.deliver(sample_batch(1), timeout=5)
        await sink.close()
    assert receiver.connections == 2
    assert len(receiver.received) == 7
