"""The gateway's tracking-plan and quarantine routes (``/v1/plans``, ``/v1/quarantine``).

Each decodes JSON (or the query string) into the ``eventwire.plans.v1``
request the gRPC servicer gets, charges the rate limit, calls the same
:class:`~eventwire.ingest.plans_service.PlansService` method and renders the
reply with the proto3 JSON mapping. No business rule lives here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final, TypeVar
from urllib.parse import parse_qsl, urlencode

from google.protobuf.message import Message

from eventwire.api import plans_pb2
from eventwire.frontends.http.body import json_body
from eventwire.frontends.http.messages import parse_into, to_json
from eventwire.frontends.http.reads import request_from_query
from eventwire.frontends.http.routes import Handler, Receive, Reply, Scope
from eventwire.ingest.plans_service import PlansService
from eventwire.security.auth import current_tenant
from eventwire.security.limits import cost_of

M = TypeVar("M", bound=Message)

_FILTER: Final = frozenset(
    name
    for field in plans_pb2.QuarantineFilter.DESCRIPTOR.fields
    for name in (field.name, field.json_name)
)


class PlanRoutes:
    """The handlers, by ``(HTTP method, path template)``."""

    def __init__(
        self, service: PlansService, *, max_body_bytes: int, charge: Callable[[int], None]
    ) -> None:
        self._service = service
        self._max_body = max_body_bytes
        self._charge = charge

    def table(self) -> dict[tuple[str, str], Handler]:
        return {
            ("POST", "/v1/plans"): self.apply_plan,
            ("GET", "/v1/plans"): self.get_plan,
            ("POST", "/v1/plans:diff"): self.diff_plan,
            ("GET", "/v1/quarantine"): self.list_quarantine,
            ("POST", "/v1/quarantine:replay"): self.replay,
            ("POST", "/v1/quarantine:discard"): self.discard,
        }

    async def _body(self, scope: Scope, receive: Receive, msg: M) -> M:
        obj = await json_body(scope, receive, self._max_body)
        req = parse_into(obj, msg, "request body")
        self._charge(cost_of(req))
        return req

    async def apply_plan(self, scope: Scope, receive: Receive) -> Reply:
        req = await self._body(scope, receive, plans_pb2.ApplyPlanRequest())
        return await _ok(self._service.apply_plan(req, current_tenant()))

    async def get_plan(self, scope: Scope, receive: Receive) -> Reply:
        req = request_from_query(scope, plans_pb2.GetPlanRequest())
        self._charge(cost_of(req))
        return await _ok(self._service.get_plan(req))

    async def diff_plan(self, scope: Scope, receive: Receive) -> Reply:
        req = await self._body(scope, receive, plans_pb2.DiffPlanRequest())
        return await _ok(self._service.diff_plan(req))

    async def list_quarantine(self, scope: Scope, receive: Receive) -> Reply:
        # The filter's fields are flat in the query string, beside limit and samples.
        pairs = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
        inner = [(k, v) for k, v in pairs if k in _FILTER]
        outer = [(k, v) for k, v in pairs if k not in _FILTER]
        req = request_from_query(
            {**scope, "query_string": urlencode(outer).encode()},
            plans_pb2.ListQuarantineRequest(),
        )
        req.filter.CopyFrom(
            request_from_query(
                {**scope, "query_string": urlencode(inner).encode()}, plans_pb2.QuarantineFilter()
            )
        )
        self._charge(cost_of(req))
        return await _ok(self._service.list_quarantine(req, current_tenant()))

    async def replay(self, scope: Scope, receive: Receive) -> Reply:
        req = await self._body(scope, receive, plans_pb2.ReplayQuarantineRequest())
        return await _ok(self._service.replay_quarantine(req, current_tenant()))

    async def discard(self, scope: Scope, receive: Receive) -> Reply:
        req = await self._body(scope, receive, plans_pb2.DiscardQuarantineRequest())
        return await _ok(self._service.discard_quarantine(req, current_tenant()))


async def _ok(reply: Awaitable[Message]) -> Reply:
    return Reply(200, to_json(await reply))
