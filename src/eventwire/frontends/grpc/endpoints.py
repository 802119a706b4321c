"""What runs around every call: one wrapper per method, built once at registration.

grpc.aio interceptors cost a coroutine, an ``await continuation(...)`` and a
handler rebuilt or looked up per call and per interceptor; with three of them
(observability, auth, request guard) that was ~25 % of a unary call's server
CPU (bench/notes.md). Here the same work is one function per method, made when
the servicers are registered: it counts the call, authenticates it, charges
the byte budget and the rate limiter, decodes the request (so garbage gets
``INVALID_ARGUMENT``, not grpcio's ``UNKNOWN`` with the parser's text), opens
the tracing span, runs the servicer and maps what it raises to a status (see
:mod:`eventwire.frontends.grpc.status`). The server then runs with no
interceptors at all, which is grpcio's fast path.

Our services get all of it (:meth:`Gate.ours`); health and reflection get the
decoding, and reflection the token check (:meth:`Gate.theirs`): they are not
counted or traced, so probes do not drown the numbers that matter.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Final

import grpc
from opentelemetry.trace import Tracer

from eventwire._errors import (
    Code,
    FieldViolation,
    InvalidArgument,
    PermissionDenied,
    is_public,
)
from eventwire._rpc import ADMIN, BY_METHOD
from eventwire.frontends.grpc.auth import authorization
from eventwire.frontends.grpc.status import abort, internal_error
from eventwire.observability.logs import REQUEST_ID, LazyRequestId
from eventwire.observability.metrics import RpcStats, ServerMetrics
from eventwire.observability.propagation import extract
from eventwire.observability.server_spans import Ending, ServerSpans
from eventwire.observability.tracing import HeadSampling
from eventwire.security.audit import admin_operation
from eventwire.security.auth import CALLER, Authenticator, current_tenant
from eventwire.security.limits import ByteBudget, RateLimiter, cost_of

Context = grpc.aio.ServicerContext[Any, Any]
Behavior = Callable[..., Any]

_SHAPES: Final = (
    ("unary", "unary_unary", grpc.unary_unary_rpc_method_handler),
    ("client_stream", "stream_unary", grpc.stream_unary_rpc_method_handler),
    ("server_stream", "unary_stream", grpc.unary_stream_rpc_method_handler),
    ("bidi_stream", "stream_stream", grpc.stream_stream_rpc_method_handler),
)

# Per the OpenTelemetry RPC conventions these codes mark a server span failed;
# the others (INVALID_ARGUMENT, NOT_FOUND, ...) are the caller's problem.
_SERVER_ERRORS: Final = frozenset(
    {"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"}
)
_CODE_NAMES: Final = {code.value[0]: code.name for code in grpc.StatusCode}
_CODE_NUMBERS: Final = {code.name: code.value[0] for code in grpc.StatusCode}


def _shape(handler: grpc.RpcMethodHandler[Any, Any]) -> tuple[str, Behavior, Any]:
    for kind, attribute, factory in _SHAPES:
        behavior = getattr(handler, attribute)
        if behavior is not None:
            return kind, behavior, factory
    raise ValueError("a method handler without behaviour")


def _aborted_code(context: Context) -> str:
    code: Any = context.code()
    if code is None:
        return "UNKNOWN"
    return code.name if isinstance(code, grpc.StatusCode) else _CODE_NAMES[int(code)]


def _type_name(decode: Callable[[bytes], Any]) -> str:
    owner = getattr(decode, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    return str(getattr(descriptor, "full_name", "message"))


class Gate:
    """The server-wide parts of every endpoint: metrics, tracer, auth and limits."""

    def __init__(
        self,
        metrics: ServerMetrics,
        *,
        tracer: Tracer | None = None,
        auth: Authenticator | None = None,
        limiter: RateLimiter | None = None,
        budget: ByteBudget | None = None,
    ) -> None:
        self.metrics = metrics
        self.tracer = tracer
        self.sampling = None if tracer is None else HeadSampling(tracer)
        self.auth = auth
        self.limiter = limiter
        self.budget = budget

    def ours(
        self, service: str, handlers: Mapping[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
        """``handlers`` of one of eventwire's services, each wrapped in an :class:`Endpoint`."""
        return {
            name: Endpoint(self, service, name, handler, counted=True).handler()
            for name, handler in handlers.items()
        }

    def theirs(
        self,
        service: str,
        handlers: Mapping[str, grpc.RpcMethodHandler[Any, Any]],
        *,
        authenticate: bool,
    ) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
        """``handlers`` of a standard service: decoded safely; with ``authenticate``,
        any valid token is enough (reflection); without, the service is open (health)."""
        return {
            name: Endpoint(
                self, service, name, handler, counted=False, authenticate=authenticate
            ).handler()
            for name, handler in handlers.items()
        }


class Endpoint:
    """One method's wrapper; its :meth:`handler` goes to grpcio in place of the original."""

    def __init__(
        self,
        gate: Gate,
        service: str,
        name: str,
        handler: grpc.RpcMethodHandler[Any, Any],
        *,
        counted: bool,
        authenticate: bool = True,
    ) -> None:
        self.kind, self._behavior, self._factory = _shape(handler)
        self._original = handler
        self._streams_in = bool(handler.request_streaming)
        decode = handler.request_deserializer
        self._decode: Callable[[bytes], Any] = decode or (lambda raw: raw)
        self._invalid = f"is not a valid {_type_name(self._decode)} message"
        path = f"/{service}/{name}"
        self._auth = gate.auth if authenticate else None
        operation = BY_METHOD.get(path)
        self._scope = None if operation is None else operation.scope
        self._operation = "" if operation is None or operation.scope != ADMIN else operation.name
        """Set for an admin operation: each call is logged with who made it."""
        # A method of our services nobody gave a scope to is refused, not left open.
        self._unscoped = counted and self._scope is None
        self._limiter = gate.limiter if counted else None
        self._budget = gate.budget if counted else None
        self._stats: RpcStats | None = (
            gate.metrics.rpc(service, name, self.kind) if counted else None
        )
        tracer = gate.tracer if counted else None
        self._spans: ServerSpans | None = None
        if tracer is not None and gate.sampling is not None:
            attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}
            self._spans = ServerSpans(tracer, gate.sampling, f"{service}/{name}", attributes)
        self._endings: dict[str, Ending] = {}

    def handler(self) -> grpc.RpcMethodHandler[Any, Any]:
        # A streaming reply comes from an async generator, or from a coroutine
        # that writes through the context (IngestEvents): that one is awaited.
        generates = inspect.isasyncgenfunction(self._behavior)
        wrapped = self._streaming_reply() if generates else self._unary_reply()
        rebuilt: grpc.RpcMethodHandler[Any, Any] = self._factory(
            wrapped,
            request_deserializer=None,  # raw bytes reach us; we decode
            response_serializer=self._original.response_serializer,
        )
        return rebuilt

    # -- the steps of a call ---------------------------------------------------------

    def _admit(self, context: Context) -> None:
        """Authenticate the caller; raise :class:`ServiceError` if refused."""
        if self._auth is None:
            return
        if self._unscoped:
            raise PermissionDenied("method not allowed")
        caller = self._auth.authorize(authorization(context.invocation_metadata()), self._scope)
        CALLER.set(caller)  # each call runs in its own task, with its own context

    def _message(self, raw: bytes) -> Any:
        try:
            message = self._decode(raw)
        except Exception:  # noqa: BLE001 - whatever the parser says, the bytes were bad
            raise InvalidArgument([FieldViolation("request", self._invalid)]) from None
        if self._limiter is not None:
            self._limiter.charge(current_tenant(), cost_of(message))
        return message

    async def _messages(self, raw: AsyncIterator[bytes]) -> AsyncIterator[Any]:
        # Raised into the servicer, which ends the call with its status once its
        # own writes are done: aborting from here could race one of them
        # (grpcio refuses two sends at once).
        async for chunk in raw:
            yield self._message(chunk)

    def _request(self, raw: Any) -> Any:
        if self._streams_in:
            return self._messages(raw)
        return self._message(raw)

    def _span(self, context: Context) -> Any:
        """The call's span, made current, or None for a call head sampling leaves out:
        that one creates no span object and touches no attribute."""
        assert self._spans is not None  # noqa: S101 - only called with a tracer
        metadata = context.invocation_metadata()
        for key, _ in metadata or ():
            if key == "traceparent":
                return self._spans.start(extract(metadata))
        return self._spans.start(None)

    def _end_span(self, traced: Any, code: str) -> None:
        assert self._spans is not None  # noqa: S101 - only called with a tracer
        ending = self._endings.get(code)
        if ending is None:
            error = code if code in _SERVER_ERRORS else None
            added = {"rpc.grpc.status_code": _CODE_NUMBERS[code]}
            ending = self._endings[code] = self._spans.ending(added, error)
        self._spans.end(traced, ending)

    # -- the two reply shapes ------------------------------------------------------

    def _unary_reply(self) -> Behavior:
        behavior, stats = self._behavior, self._stats
        # A stream's messages are charged by its servicer, as it holds them.
        budget = None if self._streams_in else self._budget

        async def call(raw: Any, context: Context) -> Any:
            REQUEST_ID.set(LazyRequestId(context))
            if stats is not None:
                stats.begin()
                begun = time.perf_counter()
            traced = self._span(context) if self._spans is not None else None
            code = "OK"
            held = 0
            admitted = False
            try:
                self._admit(context)
                admitted = True
                if budget is not None:
                    budget.take(len(raw))
                    held = len(raw)
                return await behavior(self._request(raw), context)
            except BaseException as exc:
                code = _code_of(context, exc)
                await _abort(context, exc)
                raise
            finally:
                if admitted and self._operation:  # refused callers are not operations
                    admin_operation(self._operation, CALLER.get(), code)
                if held:
                    budget.release(held)  # type: ignore[union-attr]
                if traced is not None:
                    self._end_span(traced, code)
                if stats is not None:
                    stats.end(code, time.perf_counter() - begun)

        return call

    def _streaming_reply(self) -> Behavior:
        behavior, stats = self._behavior, self._stats

        async def stream(raw: Any, context: Context) -> AsyncIterator[Any]:
            REQUEST_ID.set(LazyRequestId(context))
            if stats is not None:
                stats.begin()
                begun = time.perf_counter()
            traced = self._span(context) if self._spans is not None else None
            code = "OK"
            try:
                self._admit(context)
                async for item in behavior(self._request(raw), context):
                    yield item
            except BaseException as exc:
                code = _code_of(context, exc)
                await _abort(context, exc)
                raise
            finally:
                if traced is not None:
                    self._end_span(traced, code)
                if stats is not None:
                    stats.end(code, time.perf_counter() - begun)

        return stream


def _code_of(context: Context, exc: BaseException) -> str:
    """The status a call that raised ``exc`` ends with."""
    if isinstance(exc, grpc.aio.AbortError):
        return _aborted_code(context)
    if not isinstance(exc, Exception):  # CancelledError, GeneratorExit: the caller left
        return "CANCELLED"
    if is_public(exc):
        return Code(exc.code).name
    return "INTERNAL"


async def _abort(context: Context, exc: BaseException) -> None:
    """End the call with ``exc``'s status (raises AbortError); nothing for a cancellation."""
    if not isinstance(exc, Exception) or isinstance(exc, grpc.aio.AbortError):
        return
    if is_public(exc):
        await abort(context, exc)
    await internal_error(context, exc)
