"""Opaque cursors and page tokens: positions signed, bound to a tenant and a filter.

Positions come from the store (commit order, see :mod:`eventwire.store.base`);
a cursor carries one, signed with a secret kept in the database (so every
replica accepts every other's cursors and nobody can forge or retarget one).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
from typing import Final

import orjson

from eventwire._errors import FieldViolation, InvalidArgument
from eventwire.store.base import Position

_VERSION: Final = 1
_LAYOUT: Final = struct.Struct(">BQQ")
_MAC_BYTES: Final = 16
_TOKEN_BYTES: Final = _LAYOUT.size + _MAC_BYTES


def fingerprint(*parts: object) -> bytes:
    """What a cursor is bound to, besides the tenant: the filter it was issued for."""
    return hashlib.sha256(orjson.dumps(parts)).digest()


class Cursors:
    """Opaque, signed positions: ``base64url(version | xid | seq | mac)``."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, purpose: str, tenant: str, bound: bytes, body: bytes) -> bytes:
        message = b"\0".join((purpose.encode(), tenant.encode(), bound, body))
        return hmac.new(self._key, message, hashlib.sha256).digest()[:_MAC_BYTES]

    def encode(self, purpose: str, tenant: str, bound: bytes, position: Position) -> str:
        body = _LAYOUT.pack(_VERSION, position.xid, position.seq)
        token = body + self._mac(purpose, tenant, bound, body)
        return base64.urlsafe_b64encode(token).rstrip(b"=").decode()

    def decode(self, purpose: str, tenant: str, bound: bytes, token: str, field: str) -> Position:
        """The position in ``token``; :class:`InvalidArgument` naming ``field`` otherwise."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except ValueError:
            raw = b""
        if len(raw) != _TOKEN_BYTES or raw[0] != _VERSION:
            raise InvalidArgument([FieldViolation(field, "is not a cursor this server issued")])
        body, mac = raw[: _LAYOUT.size], raw[_LAYOUT.size :]
        if not hmac.compare_digest(mac, self._mac(purpose, tenant, bound, body)):
            # Forged, corrupted, or issued for another tenant or another filter:
            # reinterpreting it would silently skip or repeat rows.
            raise InvalidArgument(
                [
                    FieldViolation(
                        field,
                        "was issued for another filter, another tenant or another request "
                        "kind; resume with the same filter it came from",
                    )
                ]
            )
        _, xid, seq = _LAYOUT.unpack(body)
        return Position(xid, seq)
