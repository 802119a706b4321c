"""Request decoding that cannot crash a call, and limits charged on the way in.

grpcio decodes request messages itself and reports a body that does not parse
as ``UNKNOWN``, with the parser's exception text. :class:`RequestGuard` takes
decoding over for every service, so garbage gets ``INVALID_ARGUMENT`` and a
fixed message instead, and charges each decoded message to its tenant's
:class:`~eventwire.security.limits.RateLimiter` bucket on the way in. The bytes
of a unary request of our services are charged to the server's
:class:`~eventwire.security.limits.ByteBudget` until its call ends (streams
charge what they hold themselves, in the servicers, since only they know when
they let a message go).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from typing import Any, TypeVar

import grpc

from eventwire._errors import FieldViolation, InvalidArgument, ServiceError
from eventwire.frontends.grpc._handlers import HandlerCache, rebuild
from eventwire.frontends.grpc.status import abort
from eventwire.security.auth import current_tenant
from eventwire.security.limits import ByteBudget, RateLimiter, cost_of

TReq = TypeVar("TReq")
TResp = TypeVar("TResp")
Context = grpc.aio.ServicerContext[Any, Any]


def _type_name(decode: Callable[[bytes], Any]) -> str:
    owner = getattr(decode, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    return str(getattr(descriptor, "full_name", "message"))


class RequestGuard(grpc.aio.ServerInterceptor):
    """Decodes requests of every service; rate-limits those of ``limited_services``."""

    def __init__(
        self,
        limiter: RateLimiter | None,
        limited_services: Collection[str],
        budget: ByteBudget | None = None,
    ) -> None:
        self._limiter = limiter
        self._limited = frozenset(limited_services)
        self._budget = budget
        self._handlers = HandlerCache()

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[TReq, TResp] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[TReq, TResp] | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        method: str = handler_call_details.method
        decode = handler.request_deserializer

        def build() -> grpc.RpcMethodHandler[TReq, TResp]:
            ours = method[1:].rpartition("/")[0] in self._limited
            entry = _Entry(
                decode, self._limiter if ours else None, ours, self._budget if ours else None
            )
            wrap = entry.streaming if handler.request_streaming else entry.unary
            return rebuild(handler, wrap, decode=False)  # raw bytes reach us; we decode

        return self._handlers.get(method, handler, build)


class _Entry:
    """Turns the raw request bytes of one method into admitted, decoded messages."""

    def __init__(
        self,
        decode: Callable[[bytes], Any],
        limiter: RateLimiter | None,
        ours: bool,
        budget: ByteBudget | None = None,
    ) -> None:
        self._decode = decode
        self._limiter = limiter
        self._ours = ours
        self._budget = budget
        self._invalid = f"is not a valid {_type_name(decode)} message"

    def admit(self, raw: bytes) -> Any:
        """The decoded message; raise :class:`ServiceError` if it is refused."""
        try:
            message = self._decode(raw)
        except Exception:  # noqa: BLE001 - whatever the parser says, the bytes were bad
            # A new error each time: this entry serves every call of its method.
            raise InvalidArgument([FieldViolation("request", self._invalid)]) from None
        if self._limiter is not None:
            self._limiter.charge(current_tenant(), cost_of(message))
        return message

    async def admit_or_abort(self, raw: bytes, context: Context) -> Any:
        try:
            return self.admit(raw)
        except ServiceError as err:
            await abort(context, err)

    async def _messages(self, raw: AsyncIterator[bytes], context: Context) -> AsyncIterator[Any]:
        async for chunk in raw:
            if self._ours:
                # Raised into the servicer, which ends the call with its status
                # once its own writes are done: aborting from here could race
                # one of them (grpcio refuses two sends at once).
                yield self.admit(chunk)
            else:
                yield await self.admit_or_abort(chunk, context)

    def unary(self, behavior: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.isasyncgenfunction(behavior):

            async def streaming_reply(raw: bytes, context: Context) -> AsyncIterator[Any]:
                request = await self.admit_or_abort(raw, context)
                async for item in behavior(request, context):
                    yield item

            return streaming_reply

        budget = self._budget
        if budget is None:

            async def call(raw: bytes, context: Context) -> Any:
                return await behavior(await self.admit_or_abort(raw, context), context)

            return call

        async def budgeted(raw: bytes, context: Context) -> Any:
            size = len(raw)
            try:
                budget.take(size)
            except ServiceError as err:
                await abort(context, err)
            try:
                return await behavior(await self.admit_or_abort(raw, context), context)
            finally:
                budget.release(size)

        return budgeted

    def streaming(self, behavior: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.isasyncgenfunction(behavior):

            async def streaming_reply(raw: AsyncIterator[bytes], context: Context) -> Any:
                async for item in behavior(self._messages(raw, context), context):
                    yield item

            return streaming_reply

        async def call(raw: AsyncIterator[bytes], context: Context) -> Any:
            return await behavior(self._messages(raw, context), context)

        return call
