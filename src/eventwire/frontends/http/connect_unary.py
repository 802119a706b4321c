"""Connect's unary protocol for binary protobuf, served without connectrpc's per-call machinery.

A unary Connect call is an HTTP POST whose body is the request message and
whose reply body is the response message (or a JSON error). connectrpc serves
it through a request context, header objects, protocol negotiation, a timeout
scope and a task per call watching for a disconnect: on the one-event path
that cost more than the JSON route's parsing it replaces (bench/notes.md, C1).
So the common case is served here, with the same :class:`ConnectGate` steps and
the same methods: ``POST`` with ``content-type: application/proto``, no
``content-encoding`` (or ``identity``) and no ``connect-timeout-ms``. Anything
else (JSON, compression, a deadline, ``GET``, gRPC-Web, streams) goes to
connectrpc, decided from the headers before any of the body is read.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

import orjson
from connectrpc.code import Code
from connectrpc.errors import ConnectError

from eventwire.frontends.http.connect import (
    App,
    ConnectGate,
    Headers,
    Receive,
    Scope,
    Send,
    undecodable,
)
from eventwire.frontends.http.errors import HTTP_STATUS

_PROTO: Final = b"application/proto"
_REPLY_HEADERS: Final = [(b"content-type", _PROTO)]
_JSON: Final = (b"content-type", b"application/json")
_ERROR_STATUS: Final = {code.name: status for code, status in HTTP_STATUS.items()} | {
    "CANCELED": 499
}
"""Connect's HTTP status for each code: the same table as the JSON routes' (code.proto)."""

Method = Callable[[Any, Any], Awaitable[Any]]


class _Refused(Exception):
    """The body could not be read whole: already answered, or the client is gone."""


class UnaryProto:
    """One unary method's fast path; the method's connectrpc app serves the rest."""

    def __init__(
        self,
        path: str,
        method: Method,
        request_type: Any,
        *,
        gate: ConnectGate,
        fallback: App,
        read_max_bytes: int,
    ) -> None:
        self._path = path
        self._method = method
        self._parse = request_type.FromString
        self._request_type = request_type
        self._gate = gate
        self.fallback = fallback
        """The method's connectrpc application, for every call but the common case."""
        self._max = read_max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if await self.serve(scope, receive, send) is None:
            await self.fallback(scope, receive, send)

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> int | None:
        """Serve the call if it is the common case: its HTTP status; None, having
        read nothing, if it is for :attr:`fallback`."""
        authorization: list[str] = []
        plain = scope["method"] == "POST"
        proto = False
        for name, value in scope["headers"]:
            if name == b"content-type":
                proto = value == _PROTO
            elif name == b"authorization":
                authorization.append(value.decode("latin-1"))
            elif name == b"connect-timeout-ms" or (
                name == b"content-encoding" and value != b"identity"
            ):
                plain = False
        if not (plain and proto):
            return None
        headers: Headers = {}
        call = self._gate.begin(self._path)
        try:
            self._gate.admit(call, authorization, headers)
        except ConnectError as refused:
            return await _error(send, refused, headers)
        error: Exception | None = None
        reply = b""
        try:
            body = await self._body(receive)
            try:
                request = self._parse(body)
            except Exception:  # noqa: BLE001 - whatever the parser says, the bytes were bad
                raise undecodable(self._request_type) from None
            reply = (await self._method(request, None)).SerializeToString()
        except _Refused:
            self._gate.end(call, ConnectError(Code.CANCELED, "client went away"), None, headers)
            return 499
        except Exception as exc:  # noqa: BLE001 - mapped to a status by the gate
            error = exc
        mapped = self._gate.end(call, error, self._request_type, headers)
        if mapped is not None:
            return await _error(send, mapped, headers)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*_REPLY_HEADERS, (b"content-length", str(len(reply)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": reply})
        return 200

    async def _body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Refused
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self._max:
                raise ConnectError(
                    Code.RESOURCE_EXHAUSTED, f"message is larger than configured max {self._max}"
                )
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _error(send: Send, error: ConnectError, headers: Headers) -> int:
    """Connect's unary error: a JSON body on the code's HTTP status."""
    wire: dict[str, Any] = {"code": error.code.value, "message": error.message}
    if error.details:
        wire["details"] = [
            {
                "type": detail.type_name,
                "value": base64.b64encode(detail.message_bytes).decode().rstrip("="),
            }
            for detail in error.details
        ]
    body = orjson.dumps(wire)
    extra = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    status = _ERROR_STATUS[error.code.name]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [_JSON, (b"content-length", str(len(body)).encode()), *extra],
        }
    )
    await send({"type": "http.response.body", "body": body})
    return status


def fast_paths(
    apps: MutableMapping[str, App],
    unary: dict[str, tuple[Method, Any]],
    *,
    gate: ConnectGate,
    read_max_bytes: int,
) -> None:
    """Put :class:`UnaryProto` in front of each unary method of ``apps``
    (``unary``: path -> the method and its request type)."""
    for path, (method, request_type) in unary.items():
        apps[path] = UnaryProto(
            path,
            method,
            request_type,
            gate=gate,
            fallback=apps[path],
            read_max_bytes=read_max_bytes,
        )
