"""Webhook destinations: each batch is one signed JSON POST (Standard Webhooks).

Wiring: the relay builds one sink per ``http://`` / ``https://`` destination::

    sink = WebhookSink.from_url(url, options)

``url`` is the receiver's address, POSTed to as it is (a query string of its
own is kept). ``options`` are this kind's settings, as strings from the
destination's URL query or config file; :data:`OPTIONS` and the ``header.``
prefix name them all, so the relay can keep its own (what to carry, filters)
apart. Anything else is a :class:`ValueError` naming the option.

``secret``          required: ``whsec_<base64 of 24 to 64 random bytes>``. Several,
                    separated by commas, sign each request with every one
                    (rotation without downtime: the receiver accepts any).
``secret_file``     instead of ``secret``: a file holding it, so that the secret is
                    on no command line and in no environment listing.
``ca_file``         ``https://`` only: trust this PEM bundle instead of the system's.
``cert_file``, ``key_file``   a client certificate (mutual TLS).
``header.NAME``     an extra request header (``header.Authorization=Bearer ...``);
                    it cannot replace the ones this module sets.

The request (docs/webhooks.md is the receiver's side of it): body
``{"type":"eventwire.batch","data":[{"type":"event"|"alert","id":KEY,"tenant":...,
"name":...,"committedAt":ISO-8601,"data":PAYLOAD}, ...]}`` in commit order, each
PAYLOAD the row's JSON as the gateway returns it, embedded byte for byte;
``webhook-id`` ``msg_`` + 32 hex digits hashed from the rows' kinds, tenants and
keys (a retry, a re-read after a crash, a dead letter's retry: the same id);
``webhook-timestamp`` per attempt; ``webhook-signature`` ``v1,<base64 HMAC-SHA256
of "{id}.{timestamp}.{body}">``, one per secret.

Outcomes: 2xx returns. 408, 429, 5xx, 3xx (redirects are not followed: the
URL needs updating, and every batch would get the same answer), timeouts and
transport errors raise :class:`Retryable`, with ``Retry-After`` (seconds or an
HTTP date, capped at :data:`MAX_RETRY_AFTER`). Any other 4xx raises
:class:`Rejected` with the status and a short, redacted excerpt of the body.
Response bodies are read up to :data:`RESPONSE_CAP_BYTES`, undecoded.

Secrets (signing keys, extra header values, URL passwords) never appear in a
repr or an error message: both go through :func:`eventwire._redact.redact`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import ssl
import time
from collections.abc import Mapping, Sequence
from datetime import UTC
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Final

import httpx

from eventwire._redact import redact
from eventwire._version import __version__
from eventwire.destinations.sink import DeliveryError, Item, Rejected, Retryable
from eventwire.destinations.webhook_envelope import (
    encode_batch,
    parse_secrets,
    secret_words,
    sign,
    webhook_id,
)

OPTIONS: Final = frozenset({"secret", "secret_file", "ca_file", "cert_file", "key_file"})
HEADER_OPTION: Final = "header."
RESPONSE_CAP_BYTES: Final = 64 * 1024
EXCERPT_CHARS: Final = 300
MAX_RETRY_AFTER: Final = 3600.0
"""A receiver cannot park a destination for longer than this with one answer."""

_SIGNED: Final = frozenset({"webhook-id", "webhook-timestamp", "webhook-signature"})
_FRAMING: Final = frozenset({"host", "content-length", "content-encoding", "transfer-encoding"})
_OWN_HEADERS: Final = _SIGNED | _FRAMING | {"content-type", "accept-encoding"}
_TOKEN: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_UNPRINTABLE: Final = re.compile(r"[\x00-\x1f\x7f]+")
_CONTROL: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # a tab may stand in a value


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP date), or None."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        seconds = float(int(value))
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # "-0000": HTTP dates are GMT anyway
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - now
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def classify(
    status: int, retry_after: float | None, excerpt: str, where: str
) -> DeliveryError | None:
    """What an HTTP status means for the batch: None (delivered), or the error to raise."""
    if 200 <= status < 300:
        return None
    said = f"{where}: HTTP {status}" + (f": {excerpt}" if excerpt else "")
    if 400 <= status < 500 and status not in (408, 429):
        return Rejected(said)
    if 300 <= status < 400:
        said += " (redirects are not followed: point the destination at the final URL)"
    return Retryable(said, retry_after=retry_after)


def excerpt_of(body: bytes, *secrets: str) -> str:
    """A short, one-line, redacted piece of a response body for an error message."""
    text = _UNPRINTABLE.sub(" ", body[: EXCERPT_CHARS * 4].decode("utf-8", "replace")).strip()
    if len(text) > EXCERPT_CHARS:
        text = text[:EXCERPT_CHARS] + "..."
    return redact(text, *secrets)


def _check_headers(headers: Mapping[str, str]) -> dict[str, str]:
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"header.{name}: not a valid HTTP header name")
        if name.lower() in _OWN_HEADERS:
            raise ValueError(f"header.{name}: set by the webhook sink itself")
        if _CONTROL.search(value):
            raise ValueError(f"header.{name}: the value holds a control character")
    return dict(headers)


def _tls_context(
    scheme: str, ca_file: str | None, cert_file: str | None, key_file: str | None
) -> ssl.SSLContext | None:
    if scheme == "http":
        if ca_file or cert_file or key_file:
            raise ValueError("ca_file, cert_file and key_file apply to https:// URLs only")
        return None
    if bool(cert_file) != bool(key_file):
        raise ValueError("cert_file and key_file go together (a client certificate and its key)")
    try:
        # The system's trust store (OpenSSL's default paths) unless told otherwise;
        # verification cannot be turned off.
        context = ssl.create_default_context(cafile=ca_file)
        if cert_file and key_file:
            context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"TLS files for the webhook: {exc}") from None
    return context


class WebhookSink:
    """A :class:`~eventwire.destinations.sink.Sink` that POSTs each batch to one URL."""

    def __init__(
        self,
        url: str,
        *,
        secret: str,
        headers: Mapping[str, str] | None = None,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        response_cap: int = RESPONSE_CAP_BYTES,
        max_connections: int = 4,
    ) -> None:
        self._keys = parse_secrets(secret)
        self._headers = _check_headers(headers or {})
        # Never shown: the secret as given, each key as base64, header values, and the
        # URL's credentials (httpx sends them as Basic auth, which a receiver may echo).
        self._secrets: tuple[str, ...] = (
            secret,
            *secret_words(secret),
            *(base64.b64encode(k).decode("ascii") for k in self._keys),
            *(v for v in self._headers.values() if len(v) >= 4),
        )
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise ValueError(f"webhook {redact(url, *self._secrets)}: not a URL ({exc})") from None
        if parsed.userinfo:
            # Sent as a header, off the URL that errors and httpx's debug lines show.
            basic = base64.b64encode(f"{parsed.username}:{parsed.password}".encode()).decode()
            self._secrets += (parsed.password, basic)
            parsed = parsed.copy_with(userinfo=b"")
            if any(name.lower() == "authorization" for name in self._headers):
                raise ValueError(
                    f"webhook {parsed}: credentials in the URL and header.Authorization"
                )
            self._headers["Authorization"] = f"Basic {basic}"
        self._where = f"webhook {redact(str(parsed), *self._secrets)}"
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"{self._where}: a webhook URL is http:// or https:// with a host")
        if response_cap < 1 or max_connections < 1:
            raise ValueError("response_cap and max_connections must be positive")
        self._url = parsed
        self._tls = _tls_context(parsed.scheme, ca_file, cert_file, key_file)
        self._response_cap = response_cap
        self._limits = httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=30.0,
        )
        self._client: httpx.AsyncClient | None = None

    @classmethod
    def from_url(cls, url: str, options: Mapping[str, str]) -> WebhookSink:
        """A sink for ``url`` with the options in this module's docstring."""
        headers: dict[str, str] = {}
        for key, value in options.items():
            if key.startswith(HEADER_OPTION):
                headers[key.removeprefix(HEADER_OPTION)] = value
            elif key not in OPTIONS:
                known = ", ".join(sorted(OPTIONS))
                raise ValueError(f"webhook option {key!r} is unknown (known: {known}, header.*)")
        secret = options.get("secret")
        if secret_file := options.get("secret_file"):
            if secret is not None:
                raise ValueError("give secret or secret_file, not both")
            try:
                secret = Path(secret_file).read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise ValueError(f"secret_file {secret_file!r}: {exc}") from None
        if secret is None:
            raise ValueError("a webhook destination needs secret=whsec_... or secret_file=PATH")
        return cls(
            url,
            secret=secret,
            headers=headers,
            ca_file=options.get("ca_file"),
            cert_file=options.get("cert_file"),
            key_file=options.get("key_file"),
        )

    def __repr__(self) -> str:
        headers = sorted(self._headers)
        return f"WebhookSink({self._where!r}, keys={len(self._keys)}, headers={headers!r})"

    async def start(self) -> None:
        self._open()

    def _open(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                verify=self._tls if self._tls is not None else True,
                limits=self._limits,
                follow_redirects=False,
                # Proxies and CA bundles come from this sink's options, not the environment.
                trust_env=False,
            )
        return self._client

    async def deliver(self, batch: Sequence[Item], *, timeout: float) -> None:
        if not batch:
            return
        client = self._open()
        msg_id = webhook_id(batch)
        body = encode_batch(batch)
        timestamp = int(time.time())
        request = client.build_request(
            "POST",
            self._url,
            content=body,
            headers={
                **self._headers,
                "user-agent": f"eventwire/{__version__}",
                "content-type": "application/json",
                # Raw bytes are capped as they arrive: no decompression bombs.
                "accept-encoding": "identity",
                "webhook-id": msg_id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": sign(self._keys, msg_id, timestamp, body),
            },
            timeout=httpx.Timeout(timeout),
        )
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            async with asyncio.timeout_at(deadline):
                response = await client.send(request, stream=True)
        except TimeoutError:
            raise Retryable(f"{self._where}: no answer within {timeout:g} s") from None
        except httpx.TransportError as exc:
            raise Retryable(f"{self._where}: {self._describe(exc)}") from exc
        try:
            head = await self._read_head(response, deadline)
        finally:
            await response.aclose()
        error = classify(
            response.status_code,
            parse_retry_after(response.headers.get("retry-after"), now=time.time()),
            excerpt_of(head, *self._secrets),
            self._where,
        )
        if error is not None:
            raise error

    async def _read_head(self, response: httpx.Response, deadline: float) -> bytes:
        # The status is the receiver's answer; a body that trickles in, or is cut
        # off, changes nothing about it, so failing to read it is not an error.
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout_at(deadline):
                async for chunk in response.aiter_raw():
                    chunks.append(chunk)
                    size += len(chunk)
                    if size >= self._response_cap:
                        break  # the rest is dropped with the connection
        except (TimeoutError, httpx.TransportError):
            pass
        return b"".join(chunks)[: self._response_cap]

    def _describe(self, exc: httpx.TransportError) -> str:
        detail = str(exc) or "connection failed"
        return f"{type(exc).__name__}: {redact(detail, *self._secrets)}"

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            # Best effort: the connections go with the process anyway.
            with contextlib.suppress(httpx.HTTPError, OSError, RuntimeError):
                await client.aclose()
