"""The ``/v1/destinations`` routes in the OpenAPI document, their schemas from the
``destinations`` descriptors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from eventwire.api import destinations_pb2 as pb
from eventwire.frontends.http.openapi_schemas import _int64, _message_schema

_REPLIES = (pb.ListDestinationsResponse, pb.Destination, pb.DeadLetter, pb.ListDeadLettersResponse,
            pb.DeadLettersResponse)  # fmt: skip
_REQUESTS = (pb.DestinationRequest, pb.ReplayDestinationRequest, pb.DeadLettersRequest)


# What the operations accept, stated so a client (or a fuzzer) can tell a valid request.
_NAME: Final = {"minLength": 1, "description": "a configured destination's name"}
_EXTRA: Final[dict[str, dict[str, Any]]] = {
    "name": _NAME,
    "from_position": {
        "pattern": r"^(\s*[0-9]+(\.[0-9]+)?\s*)?$",
        "description": "XID.SEQ or SEQ; give this or since, not both",
    },
    "since": _int64(0),
    "kinds": {"enum": ["", "events", "alerts", "both"]},
}


def destination_schemas() -> dict[str, Any]:
    out = {m.DESCRIPTOR.name: _message_schema(m.DESCRIPTOR, request=False) for m in _REPLIES}
    for message in _REQUESTS:
        out[message.DESCRIPTOR.name] = _message_schema(
            message.DESCRIPTOR, request=True, required=("name",), extra=_EXTRA
        )
    return out


def destination_paths(
    json: Callable[..., dict[str, Any]],
    errors: Callable[..., dict[str, Any]],
    get: Callable[[dict[str, Any]], dict[str, Any]],
) -> dict[str, Any]:
    def change(op_id: str, summary: str, request: str, reply: str) -> dict[str, Any]:
        return {
            "post": {
                "operationId": op_id,
                "summary": summary,
                "requestBody": {"required": True, **json(request)},
                "responses": {"200": json(reply), **errors("400", "404", "500", "503")},
            }
        }

    name = {"name": "name", "in": "query", "required": True, "schema": {"type": "string", **_NAME}}
    page = [
        {"name": n, "in": "query", "required": False, "schema": s}
        for n, s in (
            ("page_size", {"type": "integer", "minimum": 0, "maximum": 1000}),
            ("page_token", {"type": "string", "pattern": "^[0-9]*$"}),
        )
    ]
    base = "/v1/destinations"
    return {
        base: get(
            {
                "operationId": "listDestinations",
                "summary": "The destinations: state, positions, lag, counters",
                "responses": {"200": json("ListDestinationsResponse"), **errors("500", "503")},
            }
        ),
        f"{base}:pause": change("pauseDestination", "Pause a destination",
                                "DestinationRequest", "Destination"),
        f"{base}:resume": change("resumeDestination", "Resume a destination",
                                 "DestinationRequest", "Destination"),
        f"{base}:replay": change("replayDestination", "Deliver again from a position or a time",
                                 "ReplayDestinationRequest", "Destination"),
        f"{base}:deadLetters": get(
            {
                "operationId": "listDeadLetters",
                "summary": "A destination's dead letters, oldest first",
                "parameters": [name, *page],
                "responses": {
                    "200": json("ListDeadLettersResponse"),
                    **errors("400", "404", "500", "503"),
                },
            }
        ),
        f"{base}:retryDeadLetters": change("retryDeadLetters", "Deliver dead letters again",
                                           "DeadLettersRequest", "DeadLettersResponse"),
        f"{base}:discardDeadLetters": change("discardDeadLetters", "Drop dead letters",
                                             "DeadLettersRequest", "DeadLettersResponse"),
    }  # fmt: skip
