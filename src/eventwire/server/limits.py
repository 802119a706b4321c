"""What a request may cost: request decoding that cannot crash a call, per-tenant rate limits.

grpcio decodes request messages itself and reports a body that does not parse
as ``UNKNOWN``, with the parser's exception text. :class:`RequestGuard` takes
decoding over for every service, so garbage gets ``INVALID_ARGUMENT`` and a
fixed message instead, and charges each decoded message to its tenant's
:class:`RateLimiter` bucket on the way in.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from typing import Any, TypeVar

import grpc

from eventwire.api import analytics_pb2
from eventwire.server._handlers import HandlerCache, rebuild
from eventwire.server.auth import current_tenant
from eventwire.server.errors import FieldViolation, InvalidArgument, Overloaded, ServiceError
from eventwire.server.grpc_api import abort

TReq = TypeVar("TReq")
TResp = TypeVar("TResp")
Context = grpc.aio.ServicerContext[Any, Any]


class RateLimiter:
    """One token bucket per tenant, refilled at ``rate`` per second up to ``burst``.

    A request is admitted when its tenant's bucket holds its cost (or, for a
    request costing more than ``burst``, when the bucket is full); the whole
    cost is then taken, which may leave the bucket in debt. So a large batch is
    never refused forever, and its tenant pays for it afterwards. Buckets exist
    only for tenants in the token file (or the one shared tenant), so their
    number is bounded.
    """

    def __init__(
        self, rate: float, burst: float = 0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = burst or max(1.0, rate)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def charge(self, tenant: str, cost: int) -> None:
        """Take ``cost`` from ``tenant``'s bucket or raise :class:`Overloaded`."""
        now = self._clock()
        level, at = self._buckets.get(tenant, (self.burst, now))
        level = min(self.burst, level + (now - at) * self.rate)
        need = min(float(cost), self.burst)
        if level < need:
            self._buckets[tenant] = (level, now)
            wait_ms = max(1, math.ceil((need - level) / self.rate * 1000))
            raise Overloaded(
                f"rate limit of {self.rate:g} per second for this tenant exceeded; "
                f"retry in {wait_ms} ms",
                wait_ms,
            )
        self._buckets[tenant] = (level - cost, now)


def cost_of(message: object) -> int:
    """What a request message costs: one per event it carries, at least one."""
    if isinstance(message, analytics_pb2.EventBatch):
        return max(1, len(message.events))
    return 1


def _type_name(decode: Callable[[bytes], Any]) -> str:
    owner = getattr(decode, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    return str(getattr(descriptor, "full_name", "message"))


class RequestGuard(grpc.aio.ServerInterceptor):
    """Decodes requests of every service; rate-limits those of ``limited_services``."""

    def __init__(self, limiter: RateLimiter | None, limited_services: Collection[str]) -> None:
        self._limiter = limiter
        self._limited = frozenset(limited_services)
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
            entry = _Entry(decode, self._limiter if ours else None, ours)
            wrap = entry.streaming if handler.request_streaming else entry.unary
            return rebuild(handler, wrap, decode=False)  # raw bytes reach us; we decode

        return self._handlers.get(method, handler, build)


class _Entry:
    """Turns the raw request bytes of one method into admitted, decoded messages."""

    def __init__(
        self, decode: Callable[[bytes], Any], limiter: RateLimiter | None, ours: bool
    ) -> None:
        self._decode = decode
        self._limiter = limiter
        self._ours = ours
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

        async def call(raw: bytes, context: Context) -> Any:
            return await behavior(await self.admit_or_abort(raw, context), context)

        return call

    def streaming(self, behavior: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.isasyncgenfunction(behavior):

            async def streaming_reply(raw: AsyncIterator[bytes], context: Context) -> Any:
                async for item in behavior(self._messages(raw, context), context):
                    yield item

            return streaming_reply

        async def call(raw: AsyncIterator[bytes], context: Context) -> Any:
            return await behavior(self._messages(raw, context), context)

        return call
