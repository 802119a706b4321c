"""Bearer-token authentication for gRPC calls, on :mod:`eventwire.security.auth`'s rules.

A refused call gets a handler of the same shape that only aborts, so the
servicer never runs; an accepted one runs with :data:`CALLER` set.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, Final, TypeVar

import grpc

from eventwire._errors import PermissionDenied, ServiceError
from eventwire._rpc import ANALYTICS_METHODS, TELEMETRY_METHODS
from eventwire.frontends.grpc._handlers import rebuild
from eventwire.frontends.grpc.status import grpc_code
from eventwire.security.auth import CALLER, READ, WRITE, Authenticator, Caller

READ_METHODS: Final = frozenset(
    {"CountEvents", "GetAlert", "ListAlerts", "WatchAlerts", "QueryEvents", "ExportEvents"}
)
"""The RPCs that read; the read scope allows them, and only them."""

METHOD_SCOPES: Final[Mapping[str, str]] = {
    path: READ if name in READ_METHODS else WRITE
    for table in (ANALYTICS_METHODS, TELEMETRY_METHODS)
    for name, path in table.items()
}
"""The scope each RPC needs: ``read`` for the reads above, ``write`` for the rest.

A method of a protected service missing here is refused."""


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
            return rebuild(handler, _refuse(PermissionDenied("method not allowed")))
        try:
            caller = self._auth.authorize(
                _authorization(handler_call_details.invocation_metadata), scope
            )
        except ServiceError as err:
            return rebuild(handler, _refuse(err))
        return rebuild(handler, lambda behavior: _as_caller(behavior, caller))


def _refuse(err: ServiceError) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def make(behavior: Callable[..., Any]) -> Callable[..., Any]:
        async def refuse(request: Any, context: Context) -> None:
            await context.abort(grpc_code(err.code), err.message)

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
