"""The OpenAPI 3.1 document of the JSON/HTTP gateway, served at ``/openapi.json``.

Message schemas are derived from the protobuf descriptors, so they cannot drift
from the contract: proto3 JSON names (lowerCamelCase), 64-bit integers as
strings in replies (and string or number in requests), every field printed in
replies. Every rule the server enforces that a schema can state is stated
exactly, generated from the validator's own definitions: lengths, the name
pattern (no invisible characters), int64 ranges, and the timestamp window per
unit, as numbers (the window's end moves once an hour, so the document is
rebuilt when it does; see ``latest_timestamp_ms``). What no schema can state
(the 32 KiB encoded-event limit, the body limit) is in the descriptions.
"""

from __future__ import annotations

from typing import Any, Final

from eventwire._rpc import BY_ROUTE
from eventwire._version import __version__ as _version
from eventwire.frontends.http.decimal_patterns import decimal_pattern
from eventwire.frontends.http.errors import HTTP_ONLY, HTTP_STATUS
from eventwire.frontends.http.messages import INT64_MAX, INT64_MIN
from eventwire.frontends.http.openapi_destinations import destination_paths, destination_schemas
from eventwire.frontends.http.openapi_plans import plan_operations
from eventwire.frontends.http.openapi_reads import read_operations
from eventwire.frontends.http.openapi_schemas import schemas
from eventwire.ingest.service import now_ms
from eventwire.ingest.validation import DEFAULT_LIMITS, Limits, name_pattern

__all__ = ["INT64_MAX", "INT64_MIN", "decimal_pattern", "openapi_document"]


def _json(ref: str, description: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}
    }
    out["description"] = description or ref
    return out


def _errors(*statuses: str) -> dict[str, Any]:
    meaning = {
        "400": "invalid request (google.rpc.BadRequest details name the fields)",
        "403": "the token lacks the scope the operation needs",
        "404": "not found",
        "405": "method not allowed (the Allow header lists the methods)",
        "408": "request head or body not received in time",
        "413": "request body too large (declared or sent)",
        "415": "content type is not application/json",
        "429": "ingest queue full or rate limit reached; retry after Retry-After seconds",
        "431": "request line and headers too large",
        "500": "internal error; the message carries a request id",
        "503": "storage unavailable, server shutting down, or too many connections",
    }
    out: dict[str, Any] = {}
    for status in statuses:
        code = HTTP_ONLY.get(int(status)) or next(
            c for c, http in HTTP_STATUS.items() if http == int(status)
        )
        out[status] = _json("Status", f"{meaning[status]}; code {int(code)} ({code.name})")
    if "429" in out:
        out["429"]["headers"] = {
            "Retry-After": {"schema": {"type": "string"}, "description": "whole seconds"}
        }
    out["default"] = _json("Status", "any other error, as google.rpc.Status")
    return out


# Every operation may meet these: the HTTP layer answers them before any route.
_ANY: Final = ("408", "413", "431", "503")
_WRITE_ERRORS: Final = ("400", "415", "429", "500", *_ANY)
_HEAD: Final = {"description": "the headers GET would send, no body"}


def _get(operation: dict[str, Any]) -> dict[str, Any]:
    """A GET operation and its HEAD twin (the same headers, no body)."""
    head = {
        **{k: v for k, v in operation.items() if k != "responses"},
        "operationId": operation["operationId"] + "Head",
        "summary": "Headers of: " + operation["summary"],
        "responses": {status: _HEAD for status in operation["responses"]},
    }
    return {"get": operation, "head": head}


def openapi_document(limits: Limits = DEFAULT_LIMITS, at_ms: int | None = None) -> dict[str, Any]:
    """The document as of ``at_ms`` (default: now), which fixes the timestamp window."""
    at_ms = now_ms() if at_ms is None else at_ms

    def body(ref: str) -> dict[str, Any]:
        return {"required": True, **_json(ref)}

    tracking_id = {
        "name": "tracking_id",
        "in": "path",
        "required": True,
        "schema": {
            "type": "string",
            "minLength": 1,
            "maxLength": limits.max_id_chars,
            "pattern": "^[\\x21-\\x7e]+$",
        },
    }
    bound = {"type": "integer", "minimum": 0, "maximum": INT64_MAX}
    filter_name = {"type": "string", "maxLength": limits.max_name_chars, "pattern": name_pattern()}
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "eventwire JSON/HTTP gateway",
            "version": _version,
            "description": "The gRPC API of eventwire over JSON/HTTP (proto3 JSON mapping). "
            "Errors are google.rpc.Status objects on the HTTP status of the standard "
            "gRPC mapping; errors only HTTP has carry the code gRPC gives the same "
            "condition (413 and 431: RESOURCE_EXHAUSTED). Request bodies are JSON objects "
            "in UTF-8 without repeated keys, at most "
            "the server's --http-max-body-bytes (4 MiB by default); one encoded event at "
            f"most {limits.max_event_bytes} bytes.",
        },
        "paths": {
            "/v1/events": {
                "post": {
                    "operationId": "trackEvent",
                    "summary": "Store one event",
                    "requestBody": body("TrackEventRequest"),
                    "responses": {
                        "200": _json("TrackEventResponse", "committed (or a duplicate)"),
                        **_errors(*_WRITE_ERRORS),
                    },
                }
            },
            "/v1/events:batch": {
                "post": {
                    "operationId": "trackEvents",
                    "summary": "Store many events; invalid ones are rejected, valid ones stored",
                    "requestBody": body("BatchRequest"),
                    "responses": {
                        "200": _json("BatchResponse", "valid events committed"),
                        **_errors(*_WRITE_ERRORS),
                    },
                }
            },
            "/v1/events:count": _get(
                {
                    "operationId": "countEvents",
                    "summary": "Count stored events",
                    "parameters": [
                        _query("event_name", filter_name, "exact event name"),
                        _query("user_id", filter_name, "exact user id"),
                        _query(
                            "start",
                            bound,
                            "inclusive lower bound on timestamp, in any unit a timestamp "
                            "takes; 0 = none",
                        ),
                        _query(
                            "end",
                            bound,
                            "exclusive upper bound on timestamp, in any unit a timestamp "
                            "takes; 0 = none. An end at or before start counts 0.",
                        ),
                    ],
                    "responses": {
                        "200": _json("CountEventsResponse"),
                        **_errors("400", "429", "500", *_ANY),
                    },
                }
            ),
            "/v1/alerts": {
                "post": {
                    "operationId": "reportAlert",
                    "summary": "Store one alert",
                    "requestBody": body("AlertRequest"),
                    "responses": {
                        "200": _json("AlertResponse", "committed"),
                        **_errors(*_WRITE_ERRORS),
                    },
                }
            },
            "/v1/alerts/{tracking_id}": _get(
                {
                    "operationId": "getAlert",
                    "summary": "Read one alert",
                    "parameters": [tracking_id],
                    "responses": {
                        "200": _json("Alert"),
                        **_errors("400", "404", "429", "500", *_ANY),
                    },
                }
            ),
            "/healthz": _get(
                {
                    "operationId": "liveness",
                    "summary": "Liveness: 200 while the process serves HTTP",
                    "responses": {"200": _json("Health"), **_errors(*_ANY)},
                }
            ),
            "/readyz": _get(
                {
                    "operationId": "readiness",
                    "summary": "Readiness, mirroring grpc.health.v1 (503 while storage is down "
                    "or the server drains)",
                    "responses": {
                        "200": _json("Health", "serving"),
                        "503": _json("Health", "not serving"),
                        **{k: v for k, v in _errors(*_ANY).items() if k != "503"},
                    },
                }
            ),
            "/openapi.json": _get(
                {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.1 document",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        **_errors(*_ANY),
                    },
                }
            ),
        },
        "components": {"schemas": schemas(limits, at_ms)},
    }
    for path, operations in read_operations(_json, _errors("400", "500", *_ANY), limits).items():
        document["paths"].setdefault(path, {}).update(_get(operations["get"]))
    document["paths"].update(destination_paths(_json, _errors, _get))
    document["components"]["schemas"].update(destination_schemas())
    for path, operations in plan_operations(_json, _errors, _query).items():
        for verb, operation in operations.items():
            if verb == "get":
                document["paths"].setdefault(path, {}).update(_get(operation))
            else:
                document["paths"].setdefault(path, {})[verb] = operation
    for (verb, path), op in BY_ROUTE.items():
        # The operations table says which RPC a route is and the scope it needs.
        methods = document["paths"][path]
        for method in ("get", "head") if verb == "GET" else (verb.lower(),):
            methods[method]["summary"] += f" ({op.name})"
            methods[method]["x-grpc-method"] = op.method
            methods[method]["x-eventwire-scope"] = op.scope
    return document


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }
