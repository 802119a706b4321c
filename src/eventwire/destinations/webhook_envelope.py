"""What a webhook request is made of, as pure functions: the body, its id and its
signatures (Standard Webhooks), and the secrets they are signed with.

:mod:`eventwire.destinations.webhook` sends them; its docstring gives the format.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

import orjson

from eventwire.destinations.sink import Item

SECRET_PREFIX: Final = "whsec_"  # noqa: S105 - the format's marker, not a secret
_KEY_BYTES: Final = range(24, 65)  # the spec: at least 192 bits, at most 512


def secret_words(text: str) -> list[str]:
    """The ``whsec_`` secrets in ``text``, comma-separated. Base64 has no spaces: one
    inside a secret is a ``+`` that a URL query decoded (``parse_qsl``) into a space."""
    return [word.strip().replace(" ", "+") for word in text.split(",") if word.strip()]


def parse_secrets(text: str) -> tuple[bytes, ...]:
    """The HMAC keys in ``whsec_<base64>`` secrets (see :func:`secret_words`)."""
    keys: list[bytes] = []
    for word in secret_words(text):
        if not word.startswith(SECRET_PREFIX):
            raise ValueError("secret: expected whsec_<base64> (the Standard Webhooks format)")
        encoded = word.removeprefix(SECRET_PREFIX)
        try:
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except binascii.Error:
            raise ValueError("secret: the part after whsec_ is not base64") from None
        if len(key) not in _KEY_BYTES:
            raise ValueError(
                f"secret: decodes to {len(key)} bytes; a signing secret is 24 to 64 random bytes"
            )
        keys.append(key)
    if not keys:
        raise ValueError("secret: empty; give whsec_<base64>")
    return tuple(keys)


def sign(keys: Sequence[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one ``v1,<base64>`` per key, space-separated."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.digest(key, signed, "sha256")).decode("ascii") for key in keys
    )


def webhook_id(batch: Sequence[Item]) -> str:
    """A batch's ``webhook-id``: the same rows give the same id, whenever they are sent.

    Keys rather than payloads: an upgrade that changes how a row is serialised
    must not make the receiver take a redelivery for a new message.
    """
    digest = hashlib.sha256(b"eventwire.batch/1")
    for item in batch:
        for part in (item.kind, item.tenant, item.key):
            raw = part.encode()
            digest.update(len(raw).to_bytes(4, "big"))
            digest.update(raw)
    return "msg_" + digest.hexdigest()[:32]


def encode_batch(batch: Sequence[Item]) -> bytes:
    """The request body (the envelope in this module's docstring); the same rows, same bytes."""
    return orjson.dumps(
        {
            "type": "eventwire.batch",
            "data": [
                {
                    "type": item.kind,
                    "id": item.key,
                    "tenant": item.tenant,
                    "name": item.name,
                    "committedAt": _iso_ms(item.committed_at_ms),
                    "data": orjson.Fragment(item.payload),
                }
                for item in batch
            ],
        }
    )


def _iso_ms(ms: int) -> str:
    # Integer arithmetic: ms / 1000 as a float can land a millisecond short.
    whole = datetime.fromtimestamp(ms // 1000, UTC).replace(microsecond=ms % 1000 * 1000)
    return whole.isoformat(timespec="milliseconds").replace("+00:00", "Z")
