"""The web console: static pages under ``/console/`` and the few JSON routes they need.

The pages (``static/``: HTML, CSS and vanilla JavaScript, no build step, no
CDN) read the API the way any client does, with the token the viewer typed
sent as the ``authorization`` header; nothing here bypasses a scope. Three
routes exist for the console alone, each checked like an operation of the
table (:data:`ROUTES` says the scope):

* ``GET /console/api/whoami``: the caller's tenant and scopes, so a page can
  leave out controls the token may not use (the routes refuse them anyway),
  and the API routes this server has, so a page for a feature it lacks stays
  out of the navigation;
* ``GET /console/api/status``: health, in-flight bytes, pipeline depth,
  commits/s and commit latency (:mod:`.status`);
* ``GET /console/api/events:tail``: events committed from now on (or after a
  cursor), as NDJSON, filtered by name and user in the store; its first line,
  ``{"start": CURSOR}``, is where it began, so a page paused before any event
  arrived still resumes without a gap; capped at a rate a page can draw, with
  ``{"skipped": N, "cursor": C}`` lines for the rest (:mod:`.tail`);
* ``GET /console/api/alerts:now``: ``{"cursor": CURSOR}`` for a WatchAlerts
  filter, at the newest alert: the live page watches ``/v1/alerts:watch``
  after it, so it has a place to resume from before the first alert too.

Every console reply carries a strict Content-Security-Policy (no inline script
or style, nothing from another origin) and sets no cookie.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from importlib import resources
from typing import Any, Final
from urllib.parse import parse_qsl

import orjson

from eventwire._errors import FieldViolation
from eventwire._rpc import READ
from eventwire.api import telemetry_pb2
from eventwire.frontends.http.console.status import ServerStatus
from eventwire.frontends.http.console.tail import RateCap, tail_lines
from eventwire.frontends.http.errors import HTTP_ONLY, HttpError
from eventwire.frontends.http.reads import ndjson_stream, request_from_query
from eventwire.frontends.http.routes import Reply
from eventwire.reads.service import ReadService
from eventwire.security.auth import CALLER, Caller

Scope = MutableMapping[str, Any]
Authorize = Callable[[Scope, str | None], Caller]

PREFIX: Final = "/console/"
API: Final = PREFIX + "api/"
ROUTES: Final = {
    API + "whoami": None,
    API + "status": READ,
    API + "events:tail": READ,
    API + "alerts:now": READ,
}
"""The console's own routes and the scope each needs (None: any valid token)."""

CSP: Final = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    b"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS: Final = (
    (b"content-security-policy", CSP),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-cache"),
)
_TYPES: Final = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".svg": b"image/svg+xml",
}
_TAIL_PARAMS: Final = frozenset({"event_name", "user_id", "after"})


def _static_files() -> dict[str, tuple[bytes, bytes]]:
    """Every served file by path, read once: a handful of small files."""
    files: dict[str, tuple[bytes, bytes]] = {}
    for item in resources.files(__package__).joinpath("static").iterdir():
        suffix = "." + item.name.rpartition(".")[2]
        if item.is_file() and suffix in _TYPES:
            files[PREFIX + item.name] = (item.read_bytes(), _TYPES[suffix])
    files[PREFIX] = files[PREFIX + "index.html"]
    return files


class Console:
    """Answers every request whose path is ``/console`` or under ``/console/``."""

    def __init__(
        self,
        reads: ReadService | None,
        status: ServerStatus,
        charge: Callable[[int], None],
    ) -> None:
        self._reads = reads
        self._status = status
        self._charge = charge
        self._files = _static_files()
        self.routes: list[str] = []
        """The gateway's API routes (``"POST /v1/events"``), as whoami tells the
        pages: one for a feature this server lacks (destinations, say) stays hidden."""

    async def serve(self, scope: Scope, authorize: Authorize) -> Reply:
        reply = await self._serve(scope, authorize)
        reply.headers = [*(reply.headers or []), *SECURITY_HEADERS]
        return reply

    async def _serve(self, scope: Scope, authorize: Authorize) -> Reply:
        path: str = scope["path"]
        if path == PREFIX[:-1]:
            return Reply(308, b"", [(b"location", PREFIX.encode())])
        if scope["method"] not in ("GET", "HEAD"):
            raise HttpError(
                405,
                f"{path} supports GET, HEAD, not {scope['method']}",
                code=HTTP_ONLY[405],
                headers=[(b"allow", b"GET, HEAD")],
            )
        if path in ROUTES:
            caller = authorize(scope, ROUTES[path])
            token = CALLER.set(caller)
            try:
                self._charge(1)  # one request, as a gateway route with nothing to weigh
                return await self._api(path, scope, caller)
            finally:
                CALLER.reset(token)
        found = self._files.get(path)
        if found is None:
            raise HttpError(404, f"no route for {path}", code=HTTP_ONLY[404])
        return Reply(200, found[0], media_type=found[1])

    async def _api(self, path: str, scope: Scope, caller: Caller) -> Reply:
        if path == API + "whoami":
            body = {"tenant": caller.tenant, "scopes": sorted(caller.scopes), "routes": self.routes}
            return Reply(200, orjson.dumps(body))
        if path == API + "status":
            return Reply(200, orjson.dumps(self._status.read()))
        if self._reads is None:
            raise HttpError(404, "this server serves no reads", code=HTTP_ONLY[404])
        if path == API + "alerts:now":
            req = request_from_query(scope, telemetry_pb2.WatchAlertsRequest())
            cursor = self._reads.alerts_now(req, caller.tenant)
            return Reply(200, orjson.dumps({"cursor": cursor}))
        params = _tail_params(scope)
        start, events = await self._reads.tail_events(caller.tenant, take=RateCap(), **params)
        return Reply(200, b"", stream=ndjson_stream(tail_lines(start, events), self._reads.limits))


def _tail_params(scope: Scope) -> dict[str, str]:
    raw: bytes = scope["query_string"]
    try:
        pairs = parse_qsl(raw.decode(), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise HttpError(400, "query string is not valid percent-encoded UTF-8") from None
    params: dict[str, str] = {}
    violations: list[FieldViolation] = []
    for key, value in pairs:
        if key not in _TAIL_PARAMS:
            violations.append(FieldViolation(key, "unknown query parameter"))
        elif key in params:
            violations.append(FieldViolation(key, "must be given at most once"))
        else:
            params[key] = value
    if violations:
        first = violations[0]
        raise HttpError(400, f"invalid {first.field}: {first.description}", violations=violations)
    return params


__all__ = ["PREFIX", "ROUTES", "Console", "ServerStatus"]
