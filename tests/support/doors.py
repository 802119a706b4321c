"""One call of the API through any of the HTTP port's doors, and what came back, alike.

The JSON routes, Connect (JSON or binary) and gRPC-Web all answer with a gRPC
code, a message and, for ``INVALID_ARGUMENT``, a ``google.rpc.BadRequest``;
:func:`call` returns them as one :class:`Outcome` whatever the door, so that a
test of auth, tenants, limits or bad input is written once and parametrised
over :data:`DOORS`. Requests are proto3 field dicts (snake_case names), which
every door takes.
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass, field
from typing import Any, Final

import httpx
import orjson
from google.protobuf import json_format, message_factory
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

from eventwire._rpc import BY_METHOD, SERVICES

DOORS: Final = ("json", "connect", "connect-proto", "grpc-web")
BAD_REQUEST: Final = "type.googleapis.com/google.rpc.BadRequest"
_CONNECT_CODES: Final = {
    "canceled": 1, "unknown": 2, "invalid_argument": 3, "deadline_exceeded": 4, "not_found": 5,
    "already_exists": 6, "permission_denied": 7, "resource_exhausted": 8,
    "failed_precondition": 9, "aborted": 10, "out_of_range": 11, "unimplemented": 12,
    "internal": 13, "unavailable": 14, "data_loss": 15, "unauthenticated": 16,
}  # fmt: skip
_METHODS: Final = {m.name: (s, m) for s in SERVICES for m in s.methods}


@dataclass
class Outcome:
    """What one call came back with, whatever the door."""

    http_status: int
    code: int
    """The gRPC code: 0 for success."""
    message: str = ""
    violations: list[tuple[str, str]] = field(default_factory=list)
    retry_delay_ms: int | None = None
    reply: dict[str, Any] = field(default_factory=dict)
    """The (first) reply message, proto3 JSON with camelCase names."""
    headers: httpx.Headers = field(default_factory=httpx.Headers)
    text: str = ""


def http_status_of_error(door: str, method: str, status: int) -> int:
    """The HTTP status an error with HTTP mapping ``status`` has through ``door``:
    gRPC-Web and Connect's streams carry it in the body (or trailers), on 200."""
    _, descriptor = _METHODS[method]
    streams = descriptor.server_streaming or descriptor.client_streaming
    return 200 if door == "grpc-web" or (door != "json" and streams) else status


def _violations(details: list[tuple[str, bytes]]) -> tuple[list[tuple[str, str]], int | None]:
    found: list[tuple[str, str]] = []
    delay = None
    for type_url, value in details:
        if type_url.endswith("google.rpc.BadRequest"):
            bad = error_details_pb2.BadRequest.FromString(value)
            found += [(v.field, v.description) for v in bad.field_violations]
        elif type_url.endswith("google.rpc.RetryInfo"):
            retry = error_details_pb2.RetryInfo.FromString(value)
            delay = retry.retry_delay.ToMilliseconds()
    return found, delay


def _b64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


async def call(
    http: httpx.AsyncClient,
    door: str,
    method: str,
    request: dict[str, Any],
    headers: list[tuple[str, str]] | None = None,
) -> Outcome:
    """Call ``method`` (``TrackEvent``...) with ``request`` through ``door``."""
    service, descriptor = _METHODS[method]
    in_type = message_factory.GetMessageClass(descriptor.input_type)
    out_type = message_factory.GetMessageClass(descriptor.output_type)
    headers = list(headers or [])
    if door == "json":
        return await _json(http, f"/{service.full_name}/{method}", request, headers)
    path = f"/{service.full_name}/{method}"
    message = json_format.ParseDict(request, in_type())
    streaming = descriptor.server_streaming or descriptor.client_streaming
    if door == "grpc-web":
        headers.append(("content-type", "application/grpc-web+proto"))
        body = _frame(0, message.SerializeToString())
        async with http.stream("POST", path, content=body, headers=headers) as reply:
            return await _grpc_web(reply, out_type)
    binary = door == "connect-proto"
    payload = message.SerializeToString() if binary else json_format.MessageToJson(message).encode()
    if streaming:
        headers.append(("content-type", "application/connect+" + ("proto" if binary else "json")))
        async with http.stream("POST", path, content=_frame(0, payload), headers=headers) as reply:
            return await _connect_stream(reply, out_type, binary)
    headers.append(("content-type", "application/" + ("proto" if binary else "json")))
    reply = await http.post(path, content=payload, headers=headers)
    if reply.status_code == 200:
        out = (
            out_type.FromString(reply.content)
            if binary
            else json_format.Parse(reply.content, out_type())
        )
        return Outcome(
            200, 0, reply=_dict(out), headers=reply.headers, text=reply.text if not binary else ""
        )
    return _connect_error(reply.status_code, orjson.loads(reply.content), reply.headers, reply.text)


async def _json(
    http: httpx.AsyncClient, rpc: str, request: dict[str, Any], headers: list[tuple[str, str]]
) -> Outcome:
    verb, template = BY_METHOD[rpc].routes[0]
    path = template.replace("{tracking_id}", str(request.get("tracking_id", "")))
    if verb == "GET":
        params = {k: v for k, v in request.items() if f"{{{k}}}" not in template}
        reply = await http.get(path, params=params, headers=headers)
    else:
        reply = await http.request(verb, path, json=request, headers=headers)
    if reply.status_code == 200:
        first = (
            reply.text.split("\n", 1)[0]
            if "x-ndjson" in reply.headers.get("content-type", "")
            else reply.text
        )
        body = orjson.loads(first) if first.startswith("{") else {}
        return Outcome(200, 0, reply=body, headers=reply.headers, text=reply.text)
    status = orjson.loads(reply.content)
    details = [
        (
            d["@type"],
            json_format.ParseDict(
                {k: v for k, v in d.items() if k != "@type"}, _detail_type(d["@type"])
            ).SerializeToString(),
        )
        for d in status["details"]
    ]
    violations, delay = _violations(details)
    return Outcome(
        reply.status_code,
        status["code"],
        status["message"],
        violations,
        delay,
        headers=reply.headers,
        text=reply.text,
    )


def _detail_type(type_url: str) -> Message:
    detail: Message = (
        error_details_pb2.BadRequest()
        if type_url.endswith("BadRequest")
        else error_details_pb2.RetryInfo()
    )
    return detail


def _connect_error(
    http_status: int, error: dict[str, Any], headers: httpx.Headers, text: str
) -> Outcome:
    details = [
        ("type.googleapis.com/" + d["type"], _b64(d["value"])) for d in error.get("details", [])
    ]
    violations, delay = _violations(details)
    return Outcome(
        http_status,
        _CONNECT_CODES[error["code"]],
        error.get("message", ""),
        violations,
        delay,
        headers=headers,
        text=text,
    )


def _frame(flags: int, payload: bytes) -> bytes:
    return struct.pack(">BI", flags, len(payload)) + payload


async def _frames(reply: httpx.Response) -> Any:
    """Enveloped messages as they arrive: ``(flags, payload)``."""
    pending = b""
    async for chunk in reply.aiter_bytes():
        pending += chunk
        while len(pending) >= 5:
            flags, size = struct.unpack(">BI", pending[:5])
            if len(pending) < 5 + size:
                break
            yield flags, pending[5 : 5 + size]
            pending = pending[5 + size :]


async def _connect_stream(reply: httpx.Response, out_type: Any, binary: bool) -> Outcome:
    if reply.status_code != 200:
        await reply.aread()
        return _connect_error(
            reply.status_code, orjson.loads(reply.content), reply.headers, reply.text
        )
    async for flags, payload in _frames(reply):
        if flags & 0x02:  # end of stream: an error, or none
            end = orjson.loads(payload)
            if "error" in end:
                return _connect_error(200, end["error"], reply.headers, payload.decode())
            return Outcome(200, 0, headers=reply.headers)
        out = out_type.FromString(payload) if binary else json_format.Parse(payload, out_type())
        return Outcome(200, 0, reply=_dict(out), headers=reply.headers)  # the first message
    raise AssertionError("a Connect stream ended without its end-of-stream message")


async def _grpc_web(reply: httpx.Response, out_type: Any) -> Outcome:
    trailers = {k: v for k, v in reply.headers.items() if k.startswith("grpc-")}
    first: dict[str, Any] = {}
    if "grpc-status" not in trailers:  # not trailers-only: read until the trailer frame
        async for flags, payload in _frames(reply):
            if flags & 0x80:
                for line in payload.decode().strip().split("\r\n"):
                    key, _, value = line.partition(":")
                    trailers[key.strip().lower()] = value.strip()
                break
            if not first:
                first = _dict(out_type.FromString(payload))
                break  # enough for a stream that may never end
    code = int(trailers.get("grpc-status", "0"))
    details = []
    if "grpc-status-details-bin" in trailers:
        status = status_pb2.Status.FromString(_b64(trailers["grpc-status-details-bin"]))
        details = [(d.type_url, d.value) for d in status.details]
    violations, delay = _violations(details)
    from urllib.parse import unquote

    message = unquote(trailers.get("grpc-message", ""))
    return Outcome(
        reply.status_code, code, message, violations, delay, first, reply.headers, str(trailers)
    )


def _dict(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(message)
