"""Bearer-token authentication: who is calling, for which tenant, allowed to do what.

The token file (``--auth-tokens FILE``) holds one token per line, never the
token itself but its SHA-256, hex encoded, then the tenant, then the scopes::

    # sha256(token)                                                   tenant  scopes
    9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08  acme    write,read
    60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752  globex  write

``eventwire hash-token`` prints the hash of a token read from stdin (or makes a
new random token with ``--generate``). A stolen file therefore grants nothing.
Scopes are ``write`` (TrackEvent, StreamEvents, TrackEvents, IngestEvents,
ReportAlert and their HTTP routes) and ``read`` (CountEvents, GetAlert).

The tenant a request acts for comes from its token and nothing else; it is put
in :data:`CALLER` for the servicers and the gateway to read. Presented tokens
are compared with every known hash in constant time (:func:`hmac.compare_digest`,
no early exit), and no token, hash or header value is ever logged or echoed.
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import grpc

from eventwire.server._handlers import rebuild

DEFAULT_TENANT: Final = ""
"""The one tenant every caller shares when authentication is off."""

WRITE: Final = "write"
READ: Final = "read"
SCOPES: Final = frozenset({WRITE, READ})

METHOD_SCOPES: Final[Mapping[str, str]] = {
    "/analytics.AnalyticsService/TrackEvent": WRITE,
    "/analytics.AnalyticsService/StreamEvents": WRITE,
    "/analytics.AnalyticsService/TrackEvents": WRITE,
    "/analytics.AnalyticsService/IngestEvents": WRITE,
    "/analytics.AnalyticsService/CountEvents": READ,
    "/telemetry.TelemetryService/ReportAlert": WRITE,
    "/telemetry.TelemetryService/GetAlert": READ,
}
"""The scope each RPC needs. A method of a protected service missing here is refused."""

_TENANT: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HASH: Final = re.compile(r"[0-9a-f]{64}")
_BEARER: Final = re.compile(r"Bearer ([\x21-\x7e]{1,512})", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Caller:
    tenant: str
    scopes: frozenset[str]


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


class AuthError(Exception):
    """A request refused for its credentials; the message names no secret."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


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
                raise ValueError(f"{where}: scopes are a comma-separated subset of read,write")
            seen.add(digest)
            entries.append((bytes.fromhex(digest), Caller(tenant, scopes)))
        return cls(tuple(entries))

    @classmethod
    def load(cls, path: str | Path) -> TokenTable:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read token file {path}: {exc}") from None
        return cls.parse(text, str(path))

    def lookup(self, token: str) -> Caller | None:
        presented = hashlib.sha256(token.encode()).digest()
        found: Caller | None = None
        # Every entry is compared, whatever matched, so the time taken says
        # nothing about which stored hash (if any) resembles the presented one.
        for digest, caller in self.entries:
            if hmac.compare_digest(digest, presented):
                found = caller
        return found


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
        """The caller behind an ``authorization`` header value; raise :class:`AuthError`."""
        if not authorization:
            raise AuthError(
                grpc.StatusCode.UNAUTHENTICATED, "missing credentials: send 'Bearer TOKEN'"
            )
        match = _BEARER.fullmatch(authorization)
        if match is None:
            raise AuthError(
                grpc.StatusCode.UNAUTHENTICATED, "malformed authorization: expected 'Bearer TOKEN'"
            )
        caller = self._table.lookup(match.group(1))
        if caller is None:
            raise AuthError(grpc.StatusCode.UNAUTHENTICATED, "invalid credentials")
        return caller

    def authorize(self, authorization: str | None, scope: str | None) -> Caller:
        """:meth:`authenticate`, then check ``scope`` (None: any valid token will do)."""
        caller = self.authenticate(authorization)
        if scope is not None and scope not in caller.scopes:
            raise AuthError(
                grpc.StatusCode.PERMISSION_DENIED, f"these credentials lack the {scope!r} scope"
            )
        return caller


def _authorization(metadata: Sequence[tuple[str, str | bytes]] | None) -> str | None:
    values = [v for k, v in metadata or () if k == "authorization"]
    if len(values) != 1 or not isinstance(values[0], str):
        # Two authorization entries are ambiguous; refusing is the only safe reading.
        return "" if values else None
    return values[0]


TReq = TypeVar("TReq")
TResp = TypeVar("TResp")
Context = grpc.aio.ServicerContext[Any, Any]


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Authenticates every RPC except those of ``open_services`` (health probes).

    A refused call gets a handler of the same shape that only aborts, so the
    servicer never runs; an accepted one runs with :data:`CALLER` set.
    Methods of ``protected_services`` need the scope :data:`METHOD_SCOPES`
    names; any other service (reflection) needs a valid token of any scope.
    """

    def __init__(
        self,
        authenticator: Authenticator,
        *,
        protected_services: Collection[str],
        open_services: Collection[str],
    ) -> None:
        self._auth = authenticator
        self._protected = frozenset(protected_services)
        self._open = frozenset(open_services)

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[TReq, TResp] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[TReq, TResp] | None:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        service = method[1:].rpartition("/")[0]
        if handler is None or service in self._open:
            return handler
        scope = METHOD_SCOPES.get(method)
        if scope is None and service in self._protected:
            # A new RPC nobody gave a scope to is refused, not left open.
            denied = AuthError(grpc.StatusCode.PERMISSION_DENIED, "method not allowed")
            return rebuild(handler, _refuse(denied))
        try:
            caller = self._auth.authorize(
                _authorization(handler_call_details.invocation_metadata), scope
            )
        except AuthError as err:
            return rebuild(handler, _refuse(err))
        return rebuild(handler, lambda behavior: _as_caller(behavior, caller))


def _refuse(err: AuthError) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def make(behavior: Callable[..., Any]) -> Callable[..., Any]:
        async def refuse(request: Any, context: Context) -> None:
            await context.abort(err.code, err.message)

        return refuse

    return make


def _as_caller(behavior: Callable[..., Any], caller: Caller) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(behavior):

        async def streaming(request: Any, context: Context) -> AsyncIterator[Any]:
            token = CALLER.set(caller)
            try:
                async for item in behavior(request, context):
                    yield item
            finally:
                CALLER.reset(token)

        return streaming

    async def call(request: Any, context: Context) -> Any:
        token = CALLER.set(caller)
        try:
            return await behavior(request, context)
        finally:
            CALLER.reset(token)

    return call
