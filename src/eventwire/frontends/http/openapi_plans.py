"""The OpenAPI document's tracking-plan and quarantine routes and their schemas
(``eventwire.plans.v1.PlansService`` over JSON; docs/tracking-plans.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf.descriptor import Descriptor

from eventwire.api import analytics_pb2, plans_pb2

_MESSAGES = (
    plans_pb2.ApplyPlanRequest,
    plans_pb2.ApplyPlanResponse,
    plans_pb2.Plan,
    plans_pb2.DiffPlanRequest,
    plans_pb2.DiffPlanResponse,
    plans_pb2.QuarantineFilter,
    plans_pb2.QuarantinedEvent,
    plans_pb2.QuarantineGroup,
    plans_pb2.ListQuarantineResponse,
    plans_pb2.ReplayQuarantineRequest,
    plans_pb2.ReplayQuarantineResponse,
    plans_pb2.DiscardQuarantineRequest,
    plans_pb2.DiscardQuarantineResponse,
)
_REQUESTS = frozenset(
    {
        "ApplyPlanRequest",
        "DiffPlanRequest",
        "QuarantineFilter",
        "ReplayQuarantineRequest",
        "DiscardQuarantineRequest",
    }
)


def plan_schemas(message_schema: Callable[[Descriptor, bool], dict[str, Any]]) -> dict[str, Any]:
    """The schemas of the plan routes' requests and replies, and of what the
    analytics replies gained for plans (``PlannedEvent``, ``FieldViolation``)."""
    out = {
        m.DESCRIPTOR.name: message_schema(m.DESCRIPTOR, m.DESCRIPTOR.name in _REQUESTS)
        for m in _MESSAGES
    }
    out["PlannedEvent"] = message_schema(analytics_pb2.PlannedEvent.DESCRIPTOR, False)
    out["FieldViolation"] = message_schema(analytics_pb2.FieldViolation.DESCRIPTOR, False)
    return out


def plan_operations(
    json_reply: Callable[[str, str], dict[str, Any]],
    errors: Callable[..., dict[str, Any]],
    query: Callable[[str, dict[str, Any], str], dict[str, Any]],
) -> dict[str, dict[str, Any]]:
    """``{path: {verb: operation}}`` of the plan and quarantine routes."""

    def body(ref: str) -> dict[str, Any]:
        return {"required": True, **json_reply(ref, ref)}

    def post(op_id: str, summary: str, request: str, reply: str) -> dict[str, Any]:
        return {
            "post": {
                "operationId": op_id,
                "summary": summary,
                "requestBody": body(request),
                "responses": {
                    "200": json_reply(reply, reply),
                    **errors("400", "403", "415", "429", "500", "408", "413", "431", "503"),
                },
            }
        }

    ms = {"type": "integer", "minimum": 0}
    text = {"type": "string", "maxLength": 256}
    return {
        "/v1/plans": {
            **post(
                "applyPlan",
                "Apply a tracking plan (YAML or JSON in document): checked, stored as the "
                "next version, in force on every replica within seconds; a broken plan is "
                "400 naming its JSON pointer",
                "ApplyPlanRequest",
                "ApplyPlanResponse",
            ),
            "get": {
                "operationId": "getPlan",
                "summary": "The tracking plan in force, or version N (version=0: in force; "
                "version 0 in the reply: none applied)",
                "parameters": [query("version", ms, "the version; 0 or absent: in force")],
                "responses": {
                    "200": json_reply("Plan", "Plan"),
                    **errors("400", "404", "429", "500", "408", "413", "431", "503"),
                },
            },
        },
        "/v1/plans:diff": post(
            "diffPlan",
            "What a plan document would change against the version in force",
            "DiffPlanRequest",
            "DiffPlanResponse",
        ),
        "/v1/quarantine": {
            "get": {
                "operationId": "listQuarantine",
                "summary": "Quarantined events grouped by event name and violation rule, "
                "with counts and samples",
                "parameters": [
                    query("event_name", text, "only this event name (or alert type)"),
                    query("rule", text, "only events with a violation of this rule"),
                    query("since", ms, "quarantined at or after (Unix ms)"),
                    query("until", ms, "quarantined before (Unix ms)"),
                    query("limit", {**ms, "maximum": 1000}, "most groups; 0 = 100"),
                    query("samples", {**ms, "maximum": 20}, "samples per group; 0 = 3"),
                ],
                "responses": {
                    "200": json_reply("ListQuarantineResponse", "groups"),
                    **errors("400", "429", "500", "408", "413", "431", "503"),
                },
            }
        },
        "/v1/quarantine:replay": post(
            "replayQuarantine",
            "Re-check quarantined events against the plan in force and move what it "
            "accepts into the events, exactly once",
            "ReplayQuarantineRequest",
            "ReplayQuarantineResponse",
        ),
        "/v1/quarantine:discard": post(
            "discardQuarantine",
            "Delete quarantined events; how many",
            "DiscardQuarantineRequest",
            "DiscardQuarantineResponse",
        ),
    }
