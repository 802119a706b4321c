"""Connect, gRPC-Web (and gRPC over h2c) on the HTTP door, through ``connectrpc``.

Every service of the operations table (:data:`eventwire._rpc.SERVICES`) is
mounted from its generated ``eventwire.api.*_connect`` module, on the
``google.protobuf`` classes the rest of eventwire uses, at its gRPC path
(``POST /analytics.AnalyticsService/TrackEvent``). The methods are
:mod:`.connect_services` (thin: call the service layer); what runs around each
call is :class:`ConnectGate`, one of connectrpc's metadata interceptors, so it
runs before the request body is read: it counts the call in the per-RPC
metrics, authenticates it with the scope the operations table gives its
method, and turns what the call raised into the status the gRPC door gives it
(``INVALID_ARGUMENT`` with a ``google.rpc.BadRequest``, ``RESOURCE_EXHAUSTED``
with a ``google.rpc.RetryInfo`` and ``retry-after``, ``INTERNAL`` with a
request id and nothing else). The request id, the span and the per-route
count are the gateway's (:mod:`.app`), as for every route.
"""

from __future__ import annotations

import importlib
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from typing import Any, Final

from connectrpc.code import Code as ConnectCode
from connectrpc.codec import Codec
from connectrpc.compat import google_protobuf_binary_codec
from connectrpc.errors import ConnectError, ErrorDetail
from connectrpc.method import IdempotencyLevel, MethodInfo, StreamType
from connectrpc.request import RequestContext
from connectrpc.server import ConnectASGIApplication, Endpoint
from google.protobuf import duration_pb2, json_format, message_factory
from google.rpc import error_details_pb2
from grpc_reflection.v1alpha import reflection, reflection_pb2
from protobuf.wkt import Any as AnyDetail

from eventwire._errors import (
    Code,
    FieldViolation,
    InvalidArgument,
    Overloaded,
    PermissionDenied,
    ServiceError,
    internal_message,
    is_public,
)
from eventwire._rpc import BY_METHOD, SERVICE_NAMES, SERVICES
from eventwire.observability.logs import current_request_id, new_request_id
from eventwire.observability.metrics import RpcStats, ServerMetrics
from eventwire.security.auth import CALLER, Authenticator, Caller, authorization_value

log = logging.getLogger("eventwire.gateway")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Headers = MutableMapping[str, str]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

_KINDS: Final = {
    StreamType.UNARY: "unary",
    StreamType.CLIENT_STREAM: "client_stream",
    StreamType.SERVER_STREAM: "server_stream",
    StreamType.BIDI_STREAM: "bidi_stream",
}
_CONNECT_CODES: Final = {code.name: code for code in ConnectCode}
_GRPC_NAMES: Final = {
    code: "CANCELLED" if code.name == "CANCELED" else code.name for code in ConnectCode
}
"""The gRPC spelling of each code, as the per-RPC metrics label it."""
REFLECTION: Final = ("grpc.reflection.v1.ServerReflection", reflection.SERVICE_NAME)
"""Server reflection in both protocols (``buf curl`` asks ``v1`` first, older tools
``v1alpha``): the same messages under two package names, so one servicer answers both."""
REFLECTION_PATHS: Final = tuple(f"/{name}/ServerReflectionInfo" for name in REFLECTION)
_BAD_REQUEST_URL: Final = "type.googleapis.com/google.rpc.BadRequest"
_RETRY_INFO_URL: Final = "type.googleapis.com/google.rpc.RetryInfo"


class JsonCodec:
    """The proto3 JSON mapping on ``google.protobuf`` messages, compact, strict.

    connectrpc's own pretty-prints replies and drops unknown fields; the JSON
    routes reply compact and refuse a misspelt field rather than ignore it."""

    def name(self) -> str:
        return "json"

    def encode(self, message: Any) -> bytes:
        return json_format.MessageToJson(message, indent=None).encode()

    def decode(self, data: bytes | bytearray, message_class: type[Any]) -> Any:
        return json_format.Parse(bytes(data), message_class(), ignore_unknown_fields=False)


def codecs() -> list[Codec]:
    """Binary protobuf and the proto3 JSON mapping, on ``google.protobuf`` messages."""
    return [google_protobuf_binary_codec(), JsonCodec()]


def connect_code(code: Code) -> ConnectCode:
    """connectrpc's name for one of eventwire's transport-neutral codes."""
    return ConnectCode.CANCELED if code == Code.CANCELLED else _CONNECT_CODES[code.name]


def _detail(type_url: str, value: bytes) -> ErrorDetail:
    # Packed by hand: the detail is a google.protobuf message, connectrpc's Any
    # is protobuf-py's, and the bytes on the wire are the same.
    return ErrorDetail(AnyDetail(type_url=type_url, value=value))


def to_connect_error(err: ServiceError) -> ConnectError:
    """The Connect error of a public service error: the code, message and details
    the gRPC door sends for it (``frontends/grpc/status.py``)."""
    details: list[ErrorDetail] = []
    if isinstance(err, InvalidArgument):
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=v.field, description=v.description
                )
                for v in err.violations
            ]
        )
        details.append(_detail(_BAD_REQUEST_URL, bad_request.SerializeToString()))
    elif isinstance(err, Overloaded):
        delay = duration_pb2.Duration()
        delay.FromMilliseconds(err.retry_after_ms)
        retry = error_details_pb2.RetryInfo(retry_delay=delay)
        details.append(_detail(_RETRY_INFO_URL, retry.SerializeToString()))
    return ConnectError(connect_code(err.code), err.message, details)


class Call:
    """One call's numbers, from :meth:`ConnectGate.begin` to :meth:`ConnectGate.end`."""

    __slots__ = ("begun", "path", "stats")

    def __init__(self, path: str, stats: RpcStats | None) -> None:
        self.path = path
        self.stats = stats
        self.begun = time.perf_counter()
        if stats is not None:
            stats.begin()


class ConnectGate:
    """What runs around every Connect call: count, authenticate, map errors.

    A connectrpc metadata interceptor (``on_start``/``on_end``): it runs in the
    call's own task before its body is read, so the caller it sets is the one
    the method sees, and a refused call reads no body. :mod:`.connect_unary`
    calls the same steps (``begin``, ``admit``, ``end``) directly.
    """

    def __init__(
        self,
        *,
        anonymous: Caller,
        auth: Authenticator | None,
        metrics: ServerMetrics | None,
        paths: Iterable[tuple[str, StreamType]],
    ) -> None:
        self._anonymous = anonymous
        self._auth = auth
        self._stats: dict[str, RpcStats] = {}
        if metrics is not None:
            for path, kind in paths:
                service, _, name = path[1:].partition("/")
                self._stats[path] = metrics.rpc(service, name, _KINDS[kind])

    def begin(self, path: str) -> Call:
        return Call(path, self._stats.get(path))

    def admit(self, call: Call, authorization: Sequence[str], headers: Headers) -> None:
        """Set the call's caller, or end it: raise its ConnectError, ``headers`` completed."""
        try:
            CALLER.set(self._caller(call.path, authorization))
        except ServiceError as err:
            if call.stats is not None:
                call.stats.end(err.code.name, time.perf_counter() - call.begun)
            if err.code == Code.UNAUTHENTICATED:  # as the JSON routes answer it
                headers["www-authenticate"] = 'Bearer realm="eventwire"'
            raise to_connect_error(err) from None

    def _caller(self, path: str, authorization: Sequence[str]) -> Caller:
        if self._auth is None:
            return self._anonymous
        if path in REFLECTION_PATHS:  # as on the gRPC door: any valid token
            return self._auth.authenticate(authorization_value(authorization))
        operation = BY_METHOD.get(path)
        if operation is None:  # a method nobody gave a scope to is refused, not left open
            raise PermissionDenied("method not allowed")
        return self._auth.authorize(authorization_value(authorization), operation.scope)

    def end(
        self, call: Call, error: Exception | None, request_type: Any, headers: Headers
    ) -> ConnectError | None:
        """Count the call; the ConnectError to answer ``error`` with (None: no error)."""
        mapped = None if error is None else self._mapped(call, error, request_type, headers)
        if call.stats is not None:
            code = "OK" if mapped is None else _GRPC_NAMES[mapped.code]
            call.stats.end(code, time.perf_counter() - call.begun)
        return mapped

    def _mapped(
        self, call: Call, error: Exception, request_type: Any, headers: Headers
    ) -> ConnectError:
        if isinstance(error, ConnectError):
            if error.code == ConnectCode.INVALID_ARGUMENT and error.message.startswith(
                "unmarshal message"
            ):
                # connectrpc's text is the parser's; ours names the message, as gRPC's door does.
                return undecodable(request_type)
            return error
        if is_public(error):
            if isinstance(error, Overloaded):
                seconds = max(1, math.ceil(error.retry_after_ms / 1000))
                headers["retry-after"] = str(seconds)
            return to_connect_error(error)
        request_id = current_request_id() or new_request_id()
        log.error(
            "unexpected error in %s", call.path, exc_info=error, extra={"request_id": request_id}
        )
        headers["x-request-id"] = request_id
        return ConnectError(ConnectCode.INTERNAL, internal_message(request_id))

    # -- as connectrpc's metadata interceptor ------------------------------------------

    async def on_start(self, ctx: RequestContext[Any, Any]) -> Call:
        call = self.begin(f"/{ctx.method.service_name}/{ctx.method.name}")
        self.admit(call, ctx.request_headers.getall("authorization"), ctx.response_headers)
        return call

    async def on_end(
        self, call: Call, ctx: RequestContext[Any, Any], error: Exception | None
    ) -> None:
        mapped = self.end(call, error, ctx.method.input, ctx.response_headers)
        if mapped is not None and mapped is not error:
            raise mapped from None


def undecodable(request_type: Any) -> ConnectError:
    """A request body that is not a ``request_type`` message, named as the gRPC door names it."""
    name = request_type.DESCRIPTOR.full_name
    return to_connect_error(
        InvalidArgument([FieldViolation("request", f"is not a valid {name} message")])
    )


def _kind(client_streaming: bool, server_streaming: bool) -> StreamType:
    if client_streaming:
        return StreamType.BIDI_STREAM if server_streaming else StreamType.CLIENT_STREAM
    return StreamType.SERVER_STREAM if server_streaming else StreamType.UNARY


def method_paths() -> list[tuple[str, StreamType]]:
    """Every method of the operations table's services: its path and shape."""
    return [
        (f"/{service.full_name}/{m.name}", _kind(m.client_streaming, m.server_streaming))
        for service in SERVICES
        for m in service.methods
    ]


def unary_methods(implementations: Mapping[str, object]) -> dict[str, tuple[Any, Any]]:
    """path -> (the implementation's method, its request type), for every unary method."""
    found: dict[str, tuple[Any, Any]] = {}
    for service in SERVICES:
        impl = implementations.get(service.full_name)
        for m in service.methods:
            function = getattr(impl, _snake(m.name), None)
            if function is not None and not (m.client_streaming or m.server_streaming):
                found[f"/{service.full_name}/{m.name}"] = (
                    function,
                    message_factory.GetMessageClass(m.input_type),
                )
    return found


def _snake(name: str) -> str:
    """``TrackEvent`` -> ``track_event``: the generated Protocol's method names."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def mount(
    implementations: Mapping[str, object], *, gate: ConnectGate, read_max_bytes: int
) -> dict[str, App]:
    """The Connect application of every service of the operations table, by method path.

    ``implementations``: an object per service full name with the methods of
    the generated ``Protocol``; a service without one is mounted all the same
    and answers ``UNIMPLEMENTED``, as does a method its object lacks.
    """
    apps: dict[str, App] = {}
    for service in SERVICES:
        stem = service.file.name.removesuffix(".proto").replace("/", ".")
        module = importlib.import_module(f"eventwire.api.{stem}_connect")
        impl = implementations.get(service.full_name)
        if impl is None:
            impl = type(service.name, (getattr(module, service.name),), {})()
        app = getattr(module, f"{service.name}ASGIApplication")(
            impl, interceptors=[gate], read_max_bytes=read_max_bytes, codecs=codecs()
        )
        for method in service.methods:
            apps[f"/{service.full_name}/{method.name}"] = app
    return apps


class _Reflection(ConnectASGIApplication[Any]):
    """grpcio-reflection's servicer (it never touches its context) as a Connect bidi stream."""

    def __init__(self, gate: ConnectGate, read_max_bytes: int) -> None:
        servicer = reflection.aio.ReflectionServicer((*SERVICE_NAMES, *REFLECTION))
        # An async generator, typed in grpcio-reflection as a coroutine returning one.
        answer: Any = servicer.ServerReflectionInfo

        def endpoints(_: object) -> dict[str, Any]:
            return {
                f"/{name}/ServerReflectionInfo": Endpoint.bidi_stream(
                    method=MethodInfo(
                        name="ServerReflectionInfo",
                        service_name=name,
                        input=reflection_pb2.ServerReflectionRequest,
                        output=reflection_pb2.ServerReflectionResponse,
                        idempotency_level=IdempotencyLevel.UNKNOWN,
                        stream_type=StreamType.BIDI_STREAM,
                    ),
                    function=answer,
                )
                for name in REFLECTION
            }

        super().__init__(
            service=servicer,
            endpoints=endpoints,
            interceptors=[gate],
            read_max_bytes=read_max_bytes,
            codecs=codecs(),
        )

    @property
    def path(self) -> str:
        return ""


def reflection_apps(gate: ConnectGate, read_max_bytes: int) -> dict[str, App]:
    """Server reflection (v1 and v1alpha) about the operations table's services, by path."""
    app = _Reflection(gate, read_max_bytes)
    return dict.fromkeys(REFLECTION_PATHS, app)
