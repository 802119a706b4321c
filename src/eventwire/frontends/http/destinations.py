"""The gateway's ``/v1/destinations`` routes: the operations of
:class:`~eventwire.destinations.ops.DestinationOps`, reads from the query string,
changes from a JSON body, each reply the message's JSON."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from google.protobuf.message import Message

from eventwire.api import destinations_pb2 as pb
from eventwire.destinations.ops import DestinationOps
from eventwire.frontends.http.body import json_body
from eventwire.frontends.http.messages import parse_into, to_json
from eventwire.frontends.http.reads import request_from_query
from eventwire.frontends.http.routes import Handler, Receive, Reply, Scope

M = TypeVar("M", bound=Message)


def destination_routes(ops: DestinationOps, max_body_bytes: int) -> dict[tuple[str, str], Handler]:
    # Each operation is looked up per request: building the table touches nothing.
    def read(make: Callable[[], M], operation: str) -> Handler:
        async def handle(scope: Scope, receive: Receive) -> Reply:
            call: Callable[[M], Awaitable[Message]] = getattr(ops, operation)
            return Reply(200, to_json(await call(request_from_query(scope, make()))))

        return handle

    def change(make: Callable[[], M], operation: str) -> Handler:
        async def handle(scope: Scope, receive: Receive) -> Reply:
            obj = await json_body(scope, receive, max_body_bytes)
            call: Callable[[M], Awaitable[Message]] = getattr(ops, operation)
            return Reply(200, to_json(await call(parse_into(obj, make(), "request body"))))

        return handle

    base = "/v1/destinations"
    return {
        ("GET", base): read(pb.ListDestinationsRequest, "list_destinations"),
        ("POST", f"{base}:pause"): change(pb.DestinationRequest, "pause_destination"),
        ("POST", f"{base}:resume"): change(pb.DestinationRequest, "resume_destination"),
        ("POST", f"{base}:replay"): change(pb.ReplayDestinationRequest, "replay_destination"),
        ("GET", f"{base}:deadLetters"): read(pb.ListDeadLettersRequest, "list_dead_letters"),
        ("POST", f"{base}:retryDeadLetters"): change(pb.DeadLettersRequest, "retry_dead_letters"),
        ("POST", f"{base}:discardDeadLetters"): change(
            pb.DeadLettersRequest, "discard_dead_letters"
        ),
    }
