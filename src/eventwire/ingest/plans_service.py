"""The tracking-plan and quarantine use cases, independent of the transport
(``eventwire.plans.v1.PlansService``; docs/tracking-plans.md).

Both doors call this class with decoded requests and get protobuf replies or a
:class:`~eventwire._errors.ServiceError`, as :class:`IngestService`. Plans are
one per server (every tenant's events are checked against it); the quarantine
is per tenant, like the events.

Replay re-checks each quarantined row against the plan in force and moves what
it accepts into the events (or alerts) table with the same id. The store deletes
a row from the quarantine and inserts it in one transaction, and inserts only
what that transaction deleted: a row moves once even when two replays race,
and the events table's one row per id holds whatever else happened meanwhile.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final, TypeVar

import orjson

from eventwire._errors import FieldViolation, InvalidArgument, NotFound
from eventwire.api import analytics_pb2, plans_pb2
from eventwire.ingest.enforcement import (
    ActivePlan,
    proto_violations,
    violations_json,
    violations_of,
)
from eventwire.ingest.plan import diff_plans
from eventwire.ingest.plan_state import PlanState, parse_or_refuse
from eventwire.store.base import AlertRow, EventRow, Store
from eventwire.store.quarantine import QuarantineFilter, QuarantineRow, StoredQuarantine

T = TypeVar("T")
Core = Callable[[Coroutine[Any, Any, Any]], Awaitable[Any]]

DEFAULT_GROUPS: Final = 100
MAX_GROUPS: Final = 1000
DEFAULT_SAMPLES: Final = 3
MAX_SAMPLES: Final = 20
PAGE: Final = 500
"""Quarantined rows re-checked and released per transaction by a replay."""
MAX_DOCUMENT_CHARS: Final = 4 * 1024 * 1024


class PlansService:
    def __init__(self, state: PlanState, store: Store, core: Core) -> None:
        self.state = state
        self._store = store
        self._core = core

    async def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        result: T = await self._core(coro)
        return result

    # -- plans ---------------------------------------------------------------------

    async def apply_plan(
        self, req: plans_pb2.ApplyPlanRequest, tenant: str
    ) -> plans_pb2.ApplyPlanResponse:
        _check_document(req.document)
        version, changed, changes = await self._run(
            self.state.apply(req.document, req.source, tenant, dry_run=req.dry_run)
        )
        return plans_pb2.ApplyPlanResponse(version=version, changed=changed, changes=changes)

    async def get_plan(self, req: plans_pb2.GetPlanRequest) -> plans_pb2.Plan:
        if req.version < 0:
            raise InvalidArgument([FieldViolation("version", "must be 0 (current) or more")])
        record = await self._run(self._store.get_plan(req.version))
        if record is None:
            if req.version:
                raise NotFound(f"no tracking plan version {req.version}")
            return plans_pb2.Plan()
        return plans_pb2.Plan(
            version=record.version,
            document=record.document,
            applied_at=record.applied_at,
            applied_by=record.applied_by,
        )

    async def diff_plan(self, req: plans_pb2.DiffPlanRequest) -> plans_pb2.DiffPlanResponse:
        _check_document(req.document)
        spec = parse_or_refuse(req.document, req.source)
        await self._run(self.state.refresh())
        active = self.state.active
        changes = diff_plans(None if active is None else active.spec, spec)
        return plans_pb2.DiffPlanResponse(current_version=self.state.version, changes=changes)

    # -- quarantine --------------------------------------------------------------------

    async def list_quarantine(
        self, req: plans_pb2.ListQuarantineRequest, tenant: str
    ) -> plans_pb2.ListQuarantineResponse:
        where = _filter(req.filter, tenant)
        limit = _bounded(req.limit, "limit", DEFAULT_GROUPS, MAX_GROUPS)
        samples = _bounded(req.samples, "samples", DEFAULT_SAMPLES, MAX_SAMPLES)
        groups, total = await self._run(self._store.quarantine_groups(where, limit))
        reply = plans_pb2.ListQuarantineResponse(total=total)
        for group in groups:
            sample_filter = where._replace(kind=group.kind, name=group.name, rule=group.rule)
            rows = await self._run(self._store.read_quarantine(sample_filter, 0, samples))
            reply.groups.append(
                plans_pb2.QuarantineGroup(
                    kind=group.kind,
                    event_name=group.name,
                    rule=group.rule,
                    count=group.rows,
                    samples=[quarantined_message(row.row) for row in rows],
                )
            )
        return reply

    async def replay_quarantine(
        self, req: plans_pb2.ReplayQuarantineRequest, tenant: str
    ) -> plans_pb2.ReplayQuarantineResponse:
        where = _filter(req.filter, tenant)
        await self._run(self.state.refresh())
        active = self.state.active
        moved = duplicates = remaining = 0
        after = 0
        while True:
            page = await self._run(self._store.read_quarantine(where, after, PAGE))
            if not page:
                break
            after = page[-1].seq
            events, alerts, kept = _recheck(page, active)
            remaining += kept
            if req.dry_run:
                moved += len(events) + len(alerts)
                continue
            if events or alerts:
                done, dup = await self._run(self._store.release_quarantine(events, alerts))
                moved += done
                duplicates += dup
        return plans_pb2.ReplayQuarantineResponse(
            moved=moved,
            duplicates=duplicates,
            remaining=remaining,
            plan_version=0 if active is None else active.version,
        )

    async def discard_quarantine(
        self, req: plans_pb2.DiscardQuarantineRequest, tenant: str
    ) -> plans_pb2.DiscardQuarantineResponse:
        where = _filter(req.filter, tenant)
        discarded = await self._run(self._store.discard_quarantine(where))
        return plans_pb2.DiscardQuarantineResponse(discarded=discarded)


def _recheck(
    page: list[StoredQuarantine], active: ActivePlan | None
) -> tuple[list[tuple[int, EventRow]], list[tuple[int, AlertRow]], int]:
    """What of ``page`` the plan in force accepts now, as rows to store; how many it does not."""
    events: list[tuple[int, EventRow]] = []
    alerts: list[tuple[int, AlertRow]] = []
    kept = 0
    version = 0 if active is None else active.version
    for stored in page:
        q = stored.row
        fields = orjson.loads(q.row)
        if q.kind == "alert":
            alert = AlertRow(*fields)
            verdict = (
                None
                if active is None
                else active.compiled.check_alert(alert.alert_type, _map(alert.attributes))
            )
            if verdict is None or verdict.outcome == "accept":
                alerts.append((stored.seq, alert))
            else:
                kept += 1
            continue
        event = EventRow(*fields)
        verdict = (
            None
            if active is None
            else active.compiled.check_event(
                event.event_name, _map(event.properties), event.user_id
            )
        )
        if verdict is None or verdict.outcome == "accept":
            found = violations_json(verdict.violations) if verdict and verdict.violations else None
            events.append((stored.seq, event._replace(plan_version=version, violations=found)))
        else:
            kept += 1
    return events, alerts, kept


def _map(encoded: str) -> dict[str, str]:
    value = orjson.loads(encoded)
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def quarantined_message(row: QuarantineRow) -> plans_pb2.QuarantinedEvent:
    fields = orjson.loads(row.row)
    if row.kind == "alert":
        alert = AlertRow(*fields)
        event = analytics_pb2.TrackEventRequest(
            event_name=alert.alert_type,
            user_id=alert.device_id,
            timestamp=alert.timestamp,
            properties=_map(alert.attributes),
            event_id=alert.tracking_id,
        )
    else:
        stored = EventRow(*fields)
        event = analytics_pb2.TrackEventRequest(
            event_name=stored.event_name,
            user_id=stored.user_id,
            timestamp=stored.timestamp,
            properties=_map(stored.properties),
            event_id=stored.event_id,
        )
    return plans_pb2.QuarantinedEvent(
        kind=row.kind,
        event_id=row.key,
        event=event,
        violations=proto_violations(violations_of(row.violations)),
        plan_version=row.plan_version,
        quarantined_at=row.quarantined_at,
    )


def _filter(f: plans_pb2.QuarantineFilter, tenant: str) -> QuarantineFilter:
    violations = [
        FieldViolation(f"filter.{name}", "must be 0 (unbounded) or a positive time in ms")
        for name, value in (("since", f.since), ("until", f.until))
        if value < 0
    ]
    if len(f.event_name) > 256 or len(f.rule) > 256:
        violations.append(FieldViolation("filter", "event_name and rule are at most 256 chars"))
    if violations:
        raise InvalidArgument(violations)
    return QuarantineFilter(tenant, f.event_name, f.rule, "", f.since, f.until)


def _bounded(value: int, name: str, default: int, most: int) -> int:
    if not 0 <= value <= most:
        raise InvalidArgument([FieldViolation(name, f"must be 0 (default {default}) to {most}")])
    return value or default


def _check_document(document: str) -> None:
    if not document.strip():
        raise InvalidArgument([FieldViolation("document", "is empty; send the plan's text")])
    if len(document) > MAX_DOCUMENT_CHARS:
        raise InvalidArgument(
            [FieldViolation("document", f"is above {MAX_DOCUMENT_CHARS} characters")]
        )
