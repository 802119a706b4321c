"""Each tracking-plan policy on each write path, over gRPC and the gateway, on both stores."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from google.protobuf import json_format

from eventwire import _status
from eventwire.api import analytics_pb2, plans_pb2
from tests.support.plans import Served, event, plan_store, serving, signup_plan

__all__ = ["plan_store"]  # a fixture


@dataclass
class Sent:
    """What the acknowledgements said, whatever the path."""

    stored: int = 0
    quarantined: int = 0
    flagged: list[tuple[int, str, list[str]]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    versions: set[int] = field(default_factory=set)


OUTCOME = analytics_pb2.EventOutcome.Name


def _single(sent: Sent, index: int, reply: Any) -> None:
    sent.versions.add(reply.plan_version)
    if reply.outcome == analytics_pb2.OUTCOME_QUARANTINED:
        sent.quarantined += 1
    elif not reply.duplicate:
        sent.stored += 1
    if reply.violations:
        sent.flagged.append((index, OUTCOME(reply.outcome), [v.field for v in reply.violations]))


def _ack(sent: Sent, ack: Any) -> None:
    sent.versions.add(ack.plan_version)
    sent.stored += ack.accepted
    sent.quarantined += ack.quarantined
    for flag in ack.flagged:
        sent.flagged.append((flag.index, OUTCOME(flag.outcome), [v.field for v in flag.violations]))
    for rejection in getattr(ack, "rejections", ()):
        sent.rejected += [v.field for v in rejection.violations]


def _refused(exc: grpc.aio.AioRpcError) -> list[str]:
    """The violation paths of an INVALID_ARGUMENT (any other status fails the test)."""
    if exc.code() != grpc.StatusCode.INVALID_ARGUMENT:
        raise exc
    return [f for f, _ in _status.field_violations(exc)]


async def grpc_track(s: Served, events: list[Any]) -> Sent:
    sent = Sent()
    for index, ev in enumerate(events):
        try:
            _single(sent, index, await s.analytics.TrackEvent(ev))
        except grpc.aio.AioRpcError as exc:
            sent.rejected += _refused(exc)
    return sent


async def grpc_stream(s: Served, events: list[Any]) -> Sent:
    sent = Sent()

    async def requests() -> AsyncIterator[Any]:
        for ev in events:
            yield ev

    try:
        _ack(sent, await s.analytics.StreamEvents(requests()))
    except grpc.aio.AioRpcError as exc:
        sent.rejected += _refused(exc)
    return sent


async def grpc_batch(s: Served, events: list[Any]) -> Sent:
    sent = Sent()
    _ack(sent, await s.analytics.TrackEvents(analytics_pb2.EventBatch(sequence=1, events=events)))
    return sent


async def grpc_ingest(s: Served, events: list[Any]) -> Sent:
    sent = Sent()

    async def batches() -> AsyncIterator[Any]:
        yield analytics_pb2.EventBatch(sequence=7, events=events)

    async for ack in s.analytics.IngestEvents(batches()):
        assert ack.sequence == 7
        _ack(sent, ack)
    return sent


def _json(ev: Any) -> dict[str, Any]:
    return json_format.MessageToDict(ev)


async def http_track(s: Served, events: list[Any]) -> Sent:
    sent = Sent()
    for index, ev in enumerate(events):
        reply = await s.http.post("/v1/events", json=_json(ev))
        body = reply.json()
        if reply.status_code == 400:
            assert body["code"] == 3
            sent.rejected += [v["field"] for v in body["details"][0]["fieldViolations"]]
            continue
        assert reply.status_code == 200, body
        _single(sent, index, json_format.ParseDict(body, analytics_pb2.TrackEventResponse()))
    return sent


async def http_batch(s: Served, events: list[Any]) -> Sent:
    reply = await s.http.post(
        "/v1/events:batch", json={"sequence": 1, "events": [_json(e) for e in events]}
    )
    assert reply.status_code == 200, reply.text
    sent = Sent()
    _ack(sent, json_format.ParseDict(reply.json(), analytics_pb2.IngestAck()))
    return sent


PATHS: dict[str, Callable[[Served, list[Any]], Awaitable[Sent]]] = {
    "grpc-TrackEvent": grpc_track,
    "grpc-StreamEvents": grpc_stream,
    "grpc-TrackEvents": grpc_batch,
    "grpc-IngestEvents": grpc_ingest,
    "http-events": http_track,
    "http-events-batch": http_batch,
}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("policy", ["accept", "quarantine", "reject"])
async def test_policy_on_write_path(plan_store: str, path: str, policy: str) -> None:
    async with serving(plan_store) as s:
        applied = await s.apply(signup_plan(policy))
        assert applied.changed
        assert applied.version == 1
        good, bad = event("e-good", "pro"), event("e-bad", "gold")
        sent = await PATHS[path](s, [good, bad])
        assert sent.versions <= {1}
        atomic = path == "grpc-StreamEvents"  # one bad event fails the whole stream
        if policy == "accept":
            assert (sent.stored, sent.quarantined, sent.rejected) == (2, 0, [])
            assert sent.flagged == [(1, "OUTCOME_ACCEPTED", ["properties.plan"])]
        elif policy == "quarantine":
            assert (sent.stored, sent.quarantined, sent.rejected) == (1, 1, [])
            assert sent.flagged == [(1, "OUTCOME_QUARANTINED", ["properties.plan"])]
        else:
            assert sent.stored == (0 if atomic else 1)
            assert sent.quarantined == 0
            assert sent.flagged == []
            assert len(sent.rejected) == 1
            assert sent.rejected[0].endswith("properties.plan")
        # What the acknowledgements said is what the store holds.
        assert await s.count() == sent.stored
        assert await s.quarantined() == sent.quarantined


async def test_no_plan_is_todays_behaviour(plan_store: str) -> None:
    async with serving(plan_store) as s:
        plan = await s.plans.GetPlan(plans_pb2.GetPlanRequest())
        assert plan.version == 0
        reply = await s.analytics.TrackEvent(event("e1", "anything"))
        assert reply.success
        assert reply.outcome == analytics_pb2.OUTCOME_UNSPECIFIED
        assert reply.plan_version == 0
        assert not reply.violations
        ack = await s.analytics.TrackEvents(
            analytics_pb2.EventBatch(events=[event("e2", "gold"), event("e3", None)])
        )
        assert (ack.accepted, ack.quarantined, ack.plan_version, len(ack.flagged)) == (2, 0, 0, 0)
        assert await s.count() == 3
