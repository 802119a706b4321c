"""The JSON/HTTP gateway as a plain ASGI application: dispatch, authentication, errors.

A request finds its route by path template, its operation in the operations
table (:mod:`eventwire._rpc`: the scope it needs), its caller by the bearer
token, and its handler in :mod:`.routes` or :mod:`.reads`. Every failure
becomes a ``google.rpc.Status`` body (:mod:`.errors`); an unexpected one a 500
with a request id, logged, never leaked.

It is raw ASGI rather than a framework because the framework was measured to
cost more than everything else on the one-event path (see ``bench/``); with a
dozen fixed routes, a dict lookup is all the routing needed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from eventwire._errors import Code, ServiceError, internal_message
from eventwire._rpc import ADMIN, BY_ROUTE
from eventwire.destinations.ops import DestinationOps
from eventwire.frontends.http.body import Disconnected
from eventwire.frontends.http.console import PREFIX as CONSOLE
from eventwire.frontends.http.console import Console, ServerStatus
from eventwire.frontends.http.destinations import destination_routes
from eventwire.frontends.http.errors import (
    HTTP_ONLY,
    HTTP_STATUS,
    HttpError,
    from_service_error,
    status_body,
)
from eventwire.frontends.http.plans import PlanRoutes
from eventwire.frontends.http.reads import ReadRoutes, Stream, send_stream, send_stream_head
from eventwire.frontends.http.routes import ALERTS, Handler, Reply, Routes
from eventwire.ingest.plans_service import PlansService
from eventwire.ingest.service import IngestService
from eventwire.observability.logs import REQUEST_ID, current_request_id, new_request_id
from eventwire.observability.metrics import ServerMetrics
from eventwire.observability.propagation import extract
from eventwire.reads.service import ReadService
from eventwire.security.audit import admin_operation
from eventwire.security.auth import (
    CALLER,
    DEFAULT_TENANT,
    SCOPES,
    Authenticator,
    Caller,
    authorization_value,
    current_tenant,
)
from eventwire.security.limits import RateLimiter

log = logging.getLogger("eventwire.gateway")

Scope = MutableMapping[str, Any]
Message_ = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message_]]
Send = Callable[[Message_], Awaitable[None]]

_JSON: Final = (b"content-type", b"application/json")
_ALERT: Final = ALERTS + "{tracking_id}"
_REQUEST_ID: Final = re.compile(r"[\x21-\x7e]{1,64}")
_OPEN: Final = frozenset({"/healthz", "/readyz", "/openapi.json"})
"""Probes and the API description need no credentials; every other route serves
an operation of the table, and needs its scope."""
_CHALLENGE: Final = (b"www-authenticate", b'Bearer realm="eventwire"')


class GatewayApp:
    """ASGI 3 application serving eventwire's JSON/HTTP API."""

    def __init__(
        self,
        service: IngestService,
        *,
        reads: ReadService | None = None,
        ready: Callable[[], bool],
        max_body_bytes: int,
        tenant: str = DEFAULT_TENANT,
        auth: Authenticator | None = None,
        limiter: RateLimiter | None = None,
        metrics: ServerMetrics | None = None,
        tracer: Tracer | None = None,
        destinations: DestinationOps | None = None,
        plans: PlansService | None = None,
    ) -> None:
        self._metrics = metrics
        self._tracer = tracer
        self._anonymous = Caller(tenant, SCOPES)
        """The caller of every request when ``auth`` is None."""
        self._auth = auth
        self._limiter = limiter
        self._routes: dict[str, dict[str, Handler]] = {}
        """Handlers by path template, then by HTTP method."""
        routes = Routes(service, ready=ready, max_body_bytes=max_body_bytes, charge=self._charge)
        for (method, path), handler in routes.table().items():
            self._add(method, path, handler)
        if reads is not None:
            self._add_read_routes(ReadRoutes(reads, self._charge))
        if destinations is not None:
            for (method, path), handler in destination_routes(destinations, max_body_bytes).items():
                self._add(method, path, handler)
        if plans is not None:
            plan_routes = PlanRoutes(plans, max_body_bytes=max_body_bytes, charge=self._charge)
            for (method, path), handler in plan_routes.table().items():
                self._add(method, path, handler)
        self._console = Console(reads, ServerStatus(metrics, ready), self._charge)
        self._console.routes = sorted(
            f"{verb} {path}" for path, verbs in self._routes.items() for verb in verbs
        )

    def _add(self, method: str, path: str, handler: Handler) -> None:
        if path not in _OPEN and (method, path) not in BY_ROUTE:
            # Served without a scope would be served to anyone: refuse to start.
            raise RuntimeError(f"{method} {path} is not in the operations table (eventwire._rpc)")
        self._routes.setdefault(path, {})[method] = handler

    def _add_read_routes(self, routes: ReadRoutes) -> None:
        async def as_json(body: Awaitable[bytes]) -> Reply:
            return Reply(200, await body)

        async def as_stream(stream: Awaitable[Stream]) -> Reply:
            return Reply(200, b"", stream=await stream)

        self._add("GET", "/v1/alerts", lambda s, r: as_json(routes.list_alerts(s)))
        self._add("GET", "/v1/alerts:watch", lambda s, r: as_stream(routes.watch_alerts(s)))
        self._add("GET", "/v1/events:query", lambda s, r: as_json(routes.query_events(s)))
        self._add("GET", "/v1/events:export", lambda s, r: as_stream(routes.export_events(s)))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan and websockets are not served
        route = self._route_of(scope["path"])
        token = REQUEST_ID.set(_request_id(scope))
        try:
            if self._tracer is None:
                status = await self._serve(scope, receive, send, route)
            else:
                headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
                with self._tracer.start_as_current_span(
                    f"{scope['method']} {route}",
                    context=extract(headers),
                    kind=SpanKind.SERVER,
                    attributes={"http.request.method": scope["method"], "http.route": route},
                ) as span:
                    status = await self._serve(scope, receive, send, route)
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR))
            if self._metrics is not None:
                self._metrics.http_handled.labels(route, str(status)).inc()
        finally:
            REQUEST_ID.reset(token)

    def _route_of(self, path: str) -> str:
        """The route template, a bounded label set (never the raw path)."""
        if path in self._routes:
            return path
        if path.startswith(CONSOLE) or path == CONSOLE[:-1]:
            return CONSOLE
        if path.startswith(ALERTS) and "/" not in path[len(ALERTS) :]:
            return _ALERT
        return "unmatched"

    async def _serve(self, scope: Scope, receive: Receive, send: Send, route: str) -> int:
        """Answer one request on ``route`` (its template, found once by :meth:`_route_of`);
        its HTTP status (499: the client went away first)."""
        try:
            reply = await self._dispatch(scope, receive, route)
        except HttpError as err:
            reply = Reply(err.http_status, err.body(), err.headers)
        except ServiceError as err:
            if err.public:
                error = from_service_error(err)
                reply = Reply(error.http_status, error.body(), error.headers)
            else:
                reply = self._internal(scope, err)
        except Disconnected:
            return 499
        except Exception as exc:  # noqa: BLE001 - the last line of defence; logged, not leaked
            reply = self._internal(scope, exc)
        if reply.stream is not None:
            if scope["method"] == "HEAD":
                await send_stream_head(reply.stream, send, reply.headers or [])
            else:
                await send_stream(reply.stream, send, receive, reply.headers or [])
            return reply.status
        media = _JSON if reply.media_type == _JSON[1] else (b"content-type", reply.media_type)
        headers = [media, (b"content-length", str(len(reply.body)).encode())]
        if reply.headers:
            headers.extend(reply.headers)
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": reply.body})
        return reply.status

    async def _dispatch(self, scope: Scope, receive: Receive, route: str) -> Reply:
        path: str = scope["path"]
        if route == CONSOLE:
            return await self._console.serve(scope, self._caller)
        methods = self._routes.get(route)
        if methods is None:
            raise HttpError(404, f"no route for {path}", code=HTTP_ONLY[404])
        # HEAD is GET without the body (uvicorn leaves the body out).
        method = "GET" if scope["method"] == "HEAD" else scope["method"]
        handler = methods.get(method)
        if handler is None:
            allowed = ", ".join(sorted({*methods, *(("HEAD",) if "GET" in methods else ())}))
            raise HttpError(
                405,
                f"{path} supports {allowed}, not {scope['method']}",
                code=HTTP_ONLY[405],
                headers=[(b"allow", allowed.encode())],
            )
        if route in _OPEN:
            return await handler(scope, receive)
        operation = BY_ROUTE[method, route]
        caller = self._caller(scope, operation.scope)
        token = CALLER.set(caller)
        try:
            if operation.scope != ADMIN:
                return await handler(scope, receive)
            return await _audited(operation.name, caller, handler(scope, receive))
        finally:
            CALLER.reset(token)

    def _caller(self, scope: Scope, needed: str | None) -> Caller:
        if self._auth is None:
            return self._anonymous
        values = [v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"]
        try:
            return self._auth.authorize(authorization_value(values), needed)
        except ServiceError as err:
            unauthenticated = err.code == Code.UNAUTHENTICATED
            raise HttpError(
                HTTP_STATUS[err.code],
                err.message,
                code=err.code,
                headers=[_CHALLENGE] if unauthenticated else [],
            ) from None

    def _charge(self, cost: int) -> None:
        if self._limiter is not None:
            self._limiter.charge(current_tenant(), cost)

    def _internal(self, scope: Scope, exc: Exception) -> Reply:
        request_id = current_request_id() or _request_id(scope)
        log.error(
            "unexpected error in %s %s",
            scope.get("method"),
            scope.get("path"),
            exc_info=exc,
            extra={"request_id": request_id},
        )
        body = status_body(Code.INTERNAL, internal_message(request_id))
        return Reply(500, body, [(b"x-request-id", request_id.encode())])


async def _audited(operation: str, caller: Caller, reply: Awaitable[Reply]) -> Reply:
    """Run an admin operation and log who asked for it and how it ended (its HTTP
    status), whatever the outcome (:mod:`eventwire.security.audit`)."""
    status = 500
    try:
        done = await reply
    except HttpError as err:
        status = err.http_status
        raise
    except ServiceError as err:
        status = HTTP_STATUS[err.code]
        raise
    else:
        status = done.status
        return done
    finally:
        admin_operation(operation, caller, status)


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text: str = value.decode("latin-1")
            if _REQUEST_ID.fullmatch(text):
                return text
    return new_request_id()
