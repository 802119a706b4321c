"""Rebuilding a gRPC method handler with new behaviour, the same call shape and codecs.

What the server's interceptors (observability, auth, request guard) share: each
wraps a handler's behaviour and must hand grpcio back a handler of the shape it
was given, made by the factory that goes with that shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeVar

import grpc

TReq = TypeVar("TReq")
TResp = TypeVar("TResp")

Behavior = Callable[..., Any]

_SHAPES: Final = (
    ("unary", "unary_unary", grpc.unary_unary_rpc_method_handler),
    ("client_stream", "stream_unary", grpc.stream_unary_rpc_method_handler),
    ("server_stream", "unary_stream", grpc.unary_stream_rpc_method_handler),
    ("bidi_stream", "stream_stream", grpc.stream_stream_rpc_method_handler),
)


def _shape(handler: grpc.RpcMethodHandler[Any, Any]) -> tuple[str, Behavior, Any]:
    for kind, attribute, factory in _SHAPES:
        behavior = getattr(handler, attribute)
        if behavior is not None:
            return kind, behavior, factory
    raise ValueError("a method handler without behaviour")


def kind_of(handler: grpc.RpcMethodHandler[Any, Any]) -> str:
    """``unary``, ``client_stream``, ``server_stream`` or ``bidi_stream``."""
    return _shape(handler)[0]


def rebuild(
    handler: grpc.RpcMethodHandler[TReq, TResp],
    wrap: Callable[[Behavior], Behavior],
    *,
    decode: bool = True,
) -> grpc.RpcMethodHandler[TReq, TResp]:
    """``handler`` with its behaviour wrapped; ``decode=False`` hands it raw request bytes."""
    _, behavior, factory = _shape(handler)
    rebuilt: grpc.RpcMethodHandler[TReq, TResp] = factory(
        wrap(behavior),
        request_deserializer=handler.request_deserializer if decode else None,
        response_serializer=handler.response_serializer,
    )
    return rebuilt


class HandlerCache:
    """Rebuilt handlers by method, reused while the handler they wrap is the same.

    grpc.aio asks the interceptors for a handler on every call; rebuilding it
    (metric label lookups, closures, a new handler) each time is per-request
    work for an answer that only changes when the handler below does (an
    interceptor under this one that rebuilds per call, such as auth, makes
    every call a miss, which is still correct). Only registered methods get
    here, so the cache is bounded by the API.
    """

    def __init__(self) -> None:
        self._by_method: dict[str, tuple[object, Any]] = {}

    def get(
        self,
        method: str,
        handler: grpc.RpcMethodHandler[TReq, TResp],
        build: Callable[[], grpc.RpcMethodHandler[TReq, TResp]],
    ) -> grpc.RpcMethodHandler[TReq, TResp]:
        hit = self._by_method.get(method)
        if hit is not None and hit[0] is handler:
            cached: grpc.RpcMethodHandler[TReq, TResp] = hit[1]
            return cached
        rebuilt = build()
        self._by_method[method] = (handler, rebuilt)
        return rebuilt
