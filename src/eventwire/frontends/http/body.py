"""Reading a request's JSON body: its media type, its size while it streams in, then the parser."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from eventwire.frontends.http.errors import HTTP_ONLY, HttpError
from eventwire.frontends.http.jsonparse import parse_json

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


class Disconnected(Exception):
    """The client went away before sending its whole request."""


async def json_body(scope: Scope, receive: Receive, limit: int) -> object:
    """The request's body parsed as JSON; 415, 413 or 400 when it cannot be."""
    content_type = b""
    declared = -1
    for name, value in scope["headers"]:
        if name == b"content-type":
            content_type = value
        elif name == b"content-length" and value.isdigit():
            declared = int(value)
    _check_content_type(content_type)
    if declared > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Disconnected
        chunk: bytes = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if not data:
        raise HttpError(400, "request body is empty; send a JSON object")
    return parse_json(data)


def _check_content_type(value: bytes) -> None:
    media_type, _, params = value.decode("latin-1").partition(";")
    ok = media_type.strip().lower() == "application/json"
    if ok and params:
        for param in params.split(";"):
            key, _, val = param.partition("=")
            if key.strip().lower() == "charset" and val.strip().strip('"').lower() not in (
                "utf-8",
                "utf8",
            ):
                ok = False
    if not ok:
        shown = value.decode("latin-1") or "none"
        raise HttpError(
            415, f"content-type must be application/json (UTF-8), got {shown}", code=HTTP_ONLY[415]
        )


def _too_large(limit: int) -> HttpError:
    return HttpError(
        413,
        f"request body exceeds {limit} bytes; split it into smaller requests",
        code=HTTP_ONLY[413],
        headers=[(b"connection", b"close")],
    )
