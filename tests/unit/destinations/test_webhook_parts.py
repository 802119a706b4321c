"""The webhook sink's pure parts: signing, ids, the envelope, Retry-After, statuses, options."""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook

from eventwire.destinations.sink import Item, Rejected, Retryable
from eventwire.destinations.webhook import (
    EXCERPT_CHARS,
    MAX_RETRY_AFTER,
    OPTIONS,
    WebhookSink,
    classify,
    excerpt_of,
    parse_retry_after,
)
from eventwire.destinations.webhook_envelope import encode_batch, parse_secrets, sign, webhook_id
from tests.support.webhook_receiver import sample_batch

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()


def test_the_reference_test_vector() -> None:
    # The Standard Webhooks libraries' own sign() test case.
    keys = parse_secrets("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    signature = sign(keys, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_spec_recipe_written_out_independently() -> None:
    body = encode_batch(sample_batch(3))
    msg_id, timestamp = webhook_id(sample_batch(3)), 1_765_000_000
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    expected = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    assert sign(parse_secrets(SECRET), msg_id, timestamp, body) == (
        "v1," + base64.b64encode(expected).decode()
    )


@given(st.binary(max_size=2000), st.integers(min_value=0, max_value=2**33))
def test_the_reference_library_accepts_any_body(body: bytes, now_offset: int) -> None:
    timestamp = int(datetime.now(UTC).timestamp())
    msg_id = "msg_" + f"{now_offset:032x}"[-32:]
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(parse_secrets(SECRET), msg_id, timestamp, body),
    }
    Webhook(SECRET).verify(body, headers, json_parse=False)


def test_several_secrets_give_one_signature_each_in_order() -> None:
    other = "whsec_" + base64.b64encode(b"k" * 24).decode()
    keys = parse_secrets(f"{SECRET}, {other}")
    signatures = sign(keys, "msg_1", 1, b"{}").split(" ")
    assert signatures == [sign(keys[:1], "msg_1", 1, b"{}"), sign(keys[1:], "msg_1", 1, b"{}")]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_"),
        ("whsec_not*base64!", "not base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "5 bytes"),
        ("whsec_" + base64.b64encode(b"x" * 65).decode(), "65 bytes"),
    ],
)
def test_bad_secrets_are_refused_without_being_repeated(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as caught:
        parse_secrets(text)
    if text:
        assert text.removeprefix("whsec_") not in str(caught.value)


def test_a_plus_that_a_url_query_turned_into_a_space_still_reads() -> None:
    key = bytes([0xFB]) * 24
    secret = "whsec_" + base64.b64encode(key).decode()
    assert "+" in secret
    [(_name, value)] = parse_qsl(f"secret={secret}")
    assert " " in value
    assert parse_secrets(value) == parse_secrets(secret) == (key,)
    assert parse_secrets(f"{value} , {SECRET}") == (key, *parse_secrets(SECRET))


def test_unpadded_base64_is_accepted_as_the_reference_library_does() -> None:
    padded = "whsec_" + base64.b64encode(b"y" * 25).decode()
    assert padded.endswith("=")
    assert parse_secrets(padded.rstrip("=")) == parse_secrets(padded) == (b"y" * 25,)


def test_the_webhook_id_depends_on_the_rows_and_nothing_else() -> None:
    batch = sample_batch(10)
    assert webhook_id(batch) == webhook_id(sample_batch(10))
    # Payload and position may change (a new serialiser, a re-read): same rows, same id.
    moved = [Item(i.kind, i.position + 100, i.tenant, i.key, i.name, b"{}", 0) for i in batch]
    assert webhook_id(moved) == webhook_id(batch)
    assert webhook_id(batch[:9]) != webhook_id(batch)
    assert webhook_id(batch[::-1]) != webhook_id(batch)
    assert webhook_id(sample_batch(10, tenant="other")) != webhook_id(batch)
    as_alert = [Item("alert", 0, "t", "k", "n", b"{}", 0)]
    assert webhook_id(as_alert) != webhook_id([Item("event", 0, "t", "k", "n", b"{}", 0)])
    id_ = webhook_id(batch)
    assert id_.startswith("msg_")
    assert len(id_) == 36
    assert "." not in id_


def test_the_webhook_id_cannot_be_forged_by_moving_a_boundary() -> None:
    left = [Item("event", 0, "ab", "c", "n", b"{}", 0)]
    right = [Item("event", 0, "a", "bc", "n", b"{}", 0)]
    assert webhook_id(left) != webhook_id(right)


def test_the_envelope() -> None:
    batch = sample_batch(5)
    body = encode_batch(batch)
    assert body == encode_batch(sample_batch(5))  # the same rows, the same bytes
    envelope = json.loads(body)
    assert envelope["type"] == "eventwire.batch"
    assert envelope["data"][4] == {
        "type": "alert",
        "id": "trk-4",
        "tenant": "acme",
        "name": "overheat",
        "committedAt": "2025-12-06T05:46:40.004Z",
        "data": json.loads(batch[4].payload),
    }
    for item in batch:
        assert item.payload in body


@given(st.integers(min_value=0, max_value=253_402_300_799_999))
def test_commit_times_keep_their_exact_millisecond(ms: int) -> None:
    [entry] = json.loads(encode_batch([Item("event", 0, "t", "k", "n", b"1", ms)]))["data"]
    parsed = datetime.fromisoformat(entry["committedAt"].replace("Z", "+00:00"))
    assert int(parsed.timestamp()) * 1000 + parsed.microsecond // 1000 == ms
    assert entry["committedAt"].endswith("Z")


NOW = 1_765_000_000.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("0", 0.0),
        ("120", 120.0),
        (" 5 ", 5.0),
        ("99999999999999999999", MAX_RETRY_AFTER),
        (email.utils.formatdate(NOW + 30, usegmt=True), 30.0),
        (email.utils.formatdate(NOW - 30, usegmt=True), 0.0),
        ("Sun, 06 Nov 1994 08:49:37 GMT", 0.0),
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        ("٣", None),  # a digit, but not an ASCII one
    ],
)
def test_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, None),
        (204, None),
        (299, None),
        (301, Retryable),
        (307, Retryable),
        (400, Rejected),
        (401, Rejected),
        (404, Rejected),
        (408, Retryable),
        (410, Rejected),
        (429, Retryable),
        (499, Rejected),
        (500, Retryable),
        (503, Retryable),
        (599, Retryable),
    ],
)
def test_classify(status: int, outcome: type[Exception] | None) -> None:
    error = classify(status, 3.0, "why", "webhook http://x")
    if outcome is None:
        assert error is None
    else:
        assert type(error) is outcome
        assert str(error).startswith(f"webhook http://x: HTTP {status}: why")
        assert error.retry_after == (3.0 if outcome is Retryable else None)


def test_excerpts_are_short_single_line_and_redacted() -> None:
    body = b"line one\r\n\x00line two Bearer abc.def " + "é".encode() * 2000
    text = excerpt_of(body, "line two")
    assert "\n" not in text
    assert "\x00" not in text
    assert "abc.def" not in text
    assert "line two" not in text
    assert len(text) <= EXCERPT_CHARS + 3
    assert excerpt_of(b"\xff\xfe broken utf-8") == "\ufffd\ufffd broken utf-8"


def test_options(tmp_path: Path) -> None:
    assert {"secret", "secret_file", "ca_file", "cert_file", "key_file"} == OPTIONS
    url = "https://hooks.example/in"
    with pytest.raises(ValueError, match="'events' is unknown"):
        WebhookSink.from_url(url, {"secret": SECRET, "events": "signup"})
    with pytest.raises(ValueError, match="needs secret"):
        WebhookSink.from_url(url, {})
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    sink = WebhookSink.from_url(url, {"secret_file": str(secret_file), "header.X-Team": "data"})
    assert "keys=1" in repr(sink)
    with pytest.raises(ValueError, match="not both"):
        WebhookSink.from_url(url, {"secret": SECRET, "secret_file": str(secret_file)})
    with pytest.raises(ValueError, match="secret_file"):
        WebhookSink.from_url(url, {"secret_file": str(tmp_path / "missing")})


@pytest.mark.parametrize(
    ("url", "headers", "reason"),
    [
        ("ftp://hooks.example/in", {}, "http:// or https://"),
        ("https:///in", {}, "with a host"),
        ("https://hooks.example/in", {"webhook-id": "x"}, "set by the webhook sink"),
        ("https://hooks.example/in", {"Content-Type": "text/plain"}, "set by the webhook sink"),
        ("https://hooks.example/in", {"Bad Name": "x"}, "not a valid HTTP header name"),
        ("https://hooks.example/in", {"X-A": "a\r\nX-B: b"}, "control character"),
        ("https://u:p@hooks.example/in", {"Authorization": "Bearer t"}, "credentials in the URL"),
    ],
)
def test_bad_urls_and_headers(url: str, headers: dict[str, str], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        WebhookSink(url, secret=SECRET, headers=headers)


@pytest.mark.parametrize("userinfo", ["hooks:hunter2hunter2", "tok-hunter2hunter2"])
def test_the_repr_names_no_secret(userinfo: str) -> None:
    sink = WebhookSink(
        f"https://{userinfo}@hooks.example/in", secret=SECRET, headers={"X-Api-Key": "key-123456"}
    )
    shown = repr(sink)
    assert "https://hooks.example/in" in shown
    for secret in (SECRET, SECRET.removeprefix("whsec_"), "hunter2hunter2", "key-123456"):
        assert secret not in shown


async def test_an_empty_batch_and_closing_an_unopened_sink_touch_nothing() -> None:
    sink = WebhookSink("https://hooks.example/in", secret=SECRET)
    await sink.deliver([], timeout=1)  # the unit tier would fail on a socket
    await sink.close()
    await sink.close()
