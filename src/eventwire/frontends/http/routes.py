"""The gateway's own routes: writes, counts, one alert, probes and the API document.

Each decodes JSON (or the query string) into the protobuf request the gRPC
servicers get, charges the rate limit by the operations table's rule, calls
the same :class:`~eventwire.ingest.service.IngestService` method and renders
the reply with the proto3 JSON mapping. No business rule lives here. The read
routes are :mod:`eventwire.frontends.http.reads`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

import orjson

from eventwire._errors import FieldViolation
from eventwire.api import analytics_pb2, telemetry_pb2
from eventwire.frontends.http.body import json_body
from eventwire.frontends.http.errors import HttpError
from eventwire.frontends.http.messages import (
    SEVERITY_NAMES,
    SEVERITY_RULE,
    enum_value,
    parse_event,
    parse_into,
    to_json,
)
from eventwire.frontends.http.openapi import openapi_document
from eventwire.frontends.http.reads import Stream, request_from_query
from eventwire.ingest.service import IngestService, now_ms
from eventwire.ingest.validation import latest_timestamp_ms
from eventwire.security.auth import current_tenant
from eventwire.security.limits import cost_of

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]

ALERTS: Final = "/v1/alerts/"
"""The prefix of ``/v1/alerts/{tracking_id}``."""


class Reply:
    __slots__ = ("body", "headers", "media_type", "status", "stream")

    def __init__(
        self,
        status: int,
        body: bytes,
        headers: list[tuple[bytes, bytes]] | None = None,
        stream: Stream | None = None,
        media_type: bytes = b"application/json",
    ) -> None:
        self.status = status
        self.body = body
        self.headers = headers
        self.stream = stream
        self.media_type = media_type


Handler = Callable[[Scope, Receive], Awaitable[Reply]]


class Routes:
    """The handlers of the gateway's own routes, by ``(HTTP method, path template)``."""

    def __init__(
        self,
        service: IngestService,
        *,
        ready: Callable[[], bool],
        max_body_bytes: int,
        charge: Callable[[int], None],
    ) -> None:
        self._service = service
        self._ready = ready
        self._max_body = max_body_bytes
        self._charge = charge
        self._openapi = (0, b"")
        """The document and the latest timestamp it states (it changes once an hour)."""

    def table(self) -> dict[tuple[str, str], Handler]:
        return {
            ("POST", "/v1/events"): self.track_event,
            ("POST", "/v1/events:batch"): self.track_batch,
            ("GET", "/v1/events:count"): self.count_events,
            ("POST", "/v1/alerts"): self.report_alert,
            ("GET", ALERTS + "{tracking_id}"): self.get_alert,
            ("GET", "/healthz"): self.healthz,
            ("GET", "/readyz"): self.readyz,
            ("GET", "/openapi.json"): self.openapi_json,
        }

    async def track_event(self, scope: Scope, receive: Receive) -> Reply:
        obj = await json_body(scope, receive, self._max_body)
        req = parse_event(obj, "request body")
        self._charge(cost_of(req))
        reply = await self._service.track_event(req, current_tenant())
        return Reply(200, to_json(reply))

    async def track_batch(self, scope: Scope, receive: Receive) -> Reply:
        obj = await json_body(scope, receive, self._max_body)
        if not isinstance(obj, dict):
            raise HttpError(400, 'request body must be a JSON object: {"events": [...]}')
        unknown = sorted(set(obj) - {"events", "sequence"})
        if unknown:
            raise HttpError(
                400,
                f"unknown field {unknown[0]!r} in batch request; it has 'events' and 'sequence'",
                violations=[FieldViolation(name, "unknown field") for name in unknown],
            )
        events = obj.get("events", [])
        if events is None:
            events = []
        if not isinstance(events, list):
            raise HttpError(
                400,
                "events must be a JSON array of events",
                violations=[FieldViolation("events", "must be an array")],
            )
        # The envelope is checked by hand so that each event parses on its own and
        # a bad one is named by its position.
        batch = parse_into({"sequence": obj.get("sequence")}, analytics_pb2.EventBatch(), "body")
        batch.events.extend(
            parse_event(event, f"events[{index}]") for index, event in enumerate(events)
        )
        self._charge(cost_of(batch))
        ack = await self._service.track_batch(batch, current_tenant())
        return Reply(200, to_json(ack))

    async def count_events(self, scope: Scope, receive: Receive) -> Reply:
        req = request_from_query(scope, analytics_pb2.CountEventsRequest())
        self._charge(cost_of(req))
        reply = await self._service.count_events(req, current_tenant())
        return Reply(200, to_json(reply))

    async def report_alert(self, scope: Scope, receive: Receive) -> Reply:
        obj = await json_body(scope, receive, self._max_body)
        if isinstance(obj, dict) and not enum_value(obj.get("severity"), SEVERITY_NAMES):
            raise HttpError(
                400,
                f"severity must be {SEVERITY_RULE}",
                violations=[FieldViolation("severity", f"must be {SEVERITY_RULE}")],
            )
        req = parse_into(obj, telemetry_pb2.AlertRequest(), "request body")
        self._charge(cost_of(req))
        reply = await self._service.report_alert(req, current_tenant())
        return Reply(200, to_json(reply))

    async def get_alert(self, scope: Scope, receive: Receive) -> Reply:
        tracking_id = scope["path"][len(ALERTS) :]
        req = telemetry_pb2.GetAlertRequest(tracking_id=tracking_id)
        self._charge(cost_of(req))
        reply = await self._service.get_alert(req, current_tenant())
        return Reply(200, to_json(reply))

    async def healthz(self, scope: Scope, receive: Receive) -> Reply:
        return Reply(200, b'{"status":"SERVING"}')

    async def readyz(self, scope: Scope, receive: Receive) -> Reply:
        if self._ready():
            return Reply(200, b'{"status":"SERVING"}')
        return Reply(503, b'{"status":"NOT_SERVING"}')

    async def openapi_json(self, scope: Scope, receive: Receive) -> Reply:
        limits = self._service.limits
        latest = latest_timestamp_ms(now_ms(), limits.max_future_ms)
        if self._openapi[0] != latest:
            self._openapi = (latest, orjson.dumps(openapi_document(limits)))
        return Reply(200, self._openapi[1])
