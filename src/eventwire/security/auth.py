"""Bearer-token authentication: who is calling, for which tenant, allowed to do what.

The token file (``--auth-tokens FILE``) holds one token per line, never the
token itself but its SHA-256, hex encoded, then the tenant, then the scopes::

    # sha256(token)                                                   tenant  scopes
    9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08  acme    write,read
    60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752  globex  write

``eventwire hash-token`` prints the hash of a token read from stdin (or makes a
new random token with ``--generate``). A stolen file therefore grants nothing.
Scopes are ``write``, ``read`` and ``admin``; which one each operation needs, on every
door, is the operations table's to say (:mod:`eventwire._rpc`).

The tenant a request acts for comes from its token and nothing else; it is put
in :data:`CALLER` for the servicers and the gateway to read. Presented tokens
are compared with every known hash in constant time (:func:`hmac.compare_digest`,
no early exit), and no token, hash or header value is ever logged or echoed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from eventwire._errors import PermissionDenied, Unauthenticated
from eventwire._rpc import ADMIN, READ, WRITE

DEFAULT_TENANT: Final = ""
"""The one tenant every caller shares when authentication is off."""

SCOPES: Final = frozenset({WRITE, READ, ADMIN})

_TENANT: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HASH: Final = re.compile(r"[0-9a-f]{64}")
_BEARER: Final = re.compile(r"Bearer ([\x21-\x7e]{1,512})", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Caller:
    tenant: str
    scopes: frozenset[str]
    token_id: str = ""
    """The first 12 hex digits of the token's SHA-256, as its line in the token
    file starts: names the token in an audit log without revealing it ("" when
    authentication is off)."""


ANONYMOUS: Final = Caller(DEFAULT_TENANT, SCOPES)
"""The caller when authentication is off: the shared tenant, every scope."""

CALLER: ContextVar[Caller] = ContextVar("eventwire_caller", default=ANONYMOUS)
"""The authenticated caller of the request being served."""


def current_tenant() -> str:
    return CALLER.get().tenant


def hash_token(token: str) -> str:
    """The form a token is stored in: SHA-256 of its UTF-8 bytes, lower-case hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh random token: 256 bits, URL-safe, fit for a header."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class TokenTable:
    entries: tuple[tuple[bytes, Caller], ...]

    @classmethod
    def parse(cls, text: str, source: str = "token file") -> TokenTable:
        """Parse the file format in the module docstring; raise :class:`ValueError`."""
        entries: list[tuple[bytes, Caller]] = []
        seen: set[str] = set()
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            where = f"{source} line {number}"
            parts = line.split()
            if len(parts) != 3:
                raise ValueError(f"{where}: expected 'SHA256-HEX TENANT SCOPES'")
            digest, tenant, scope_list = parts
            if not _HASH.fullmatch(digest):
                # A raw token pasted by mistake must not end up in an error log.
                raise ValueError(f"{where}: the first column must be 64 lower-case hex digits")
            if digest in seen:
                raise ValueError(f"{where}: this hash is listed twice")
            if not _TENANT.fullmatch(tenant):
                raise ValueError(
                    f"{where}: tenant must be 1-64 of A-Z a-z 0-9 . _ -, starting alphanumeric"
                )
            scopes = frozenset(scope_list.split(","))
            if not scopes or not scopes <= SCOPES:
                raise ValueError(
                    f"{where}: scopes are a comma-separated subset of read,write,admin"
                )
            seen.add(digest)
            entries.append((bytes.fromhex(digest), Caller(tenant, scopes, digest[:12])))
        return cls(tuple(entries))

    @classmethod
    def load(cls, path: str | Path) -> TokenTable:
        """The table in ``path``; :class:`ValueError` if unreadable, malformed or empty."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read token file {path}: {exc}") from None
        table = cls.parse(text, str(path))
        if not table.entries:
            # Serving with it would refuse every client: surely not what was meant.
            raise ValueError(
                f"token file {path} holds no token, so every call would be refused; add "
                "lines made by 'eventwire hash-token --generate --tenant NAME', or drop "
                "--auth-tokens to serve without authentication"
            )
        return table

    def lookup(self, token: str) -> Caller | None:
        presented = hashlib.sha256(token.encode()).digest()
        found: Caller | None = None
        # Every entry is compared, whatever matched, so the time taken says
        # nothing about which stored hash (if any) resembles the presented one.
        for digest, caller in self.entries:
            if hmac.compare_digest(digest, presented):
                found = caller
        return found


def authorization_value(values: Sequence[str | bytes]) -> str | None:
    """The one ``authorization`` value of a request, given every value it sent
    under that name (HTTP headers decoded as Latin-1, gRPC metadata as is).

    None when there is none; "" (refused as malformed) when there are several,
    which are ambiguous, or when it is binary (gRPC ``-bin`` style values).
    """
    if len(values) != 1 or not isinstance(values[0], str):
        return "" if values else None
    return values[0]


class Authenticator:
    """The current token table, swapped whole on :meth:`reload`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._table = TokenTable.load(self.path)

    def __len__(self) -> int:
        return len(self._table.entries)

    def reload(self) -> int:
        """Re-read the file; on error keep the current table and raise :class:`ValueError`."""
        table = TokenTable.load(self.path)
        self._table = table
        return len(table.entries)

    def authenticate(self, authorization: str | None) -> Caller:
        """The caller behind an ``authorization`` header value; raise :class:`Unauthenticated`."""
        if not authorization:
            raise Unauthenticated("missing credentials: send 'Bearer TOKEN'")
        match = _BEARER.fullmatch(authorization)
        if match is None:
            raise Unauthenticated("malformed authorization: expected 'Bearer TOKEN'")
        caller = self._table.lookup(match.group(1))
        if caller is None:
            raise Unauthenticated("invalid credentials")
        return caller

    def authorize(self, authorization: str | None, scope: str | None) -> Caller:
        """:meth:`authenticate`, then check ``scope`` (None: any valid token will do)."""
        caller = self.authenticate(authorization)
        if scope is not None and scope not in caller.scopes:
            raise PermissionDenied(f"these credentials lack the {scope!r} scope")
        return caller
