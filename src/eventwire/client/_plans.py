"""PlansClient and its blocking twin SyncPlansClient (``eventwire.plans.v1.PlansService``):
tracking plans and the quarantine (docs/tracking-plans.md)."""

from __future__ import annotations

from eventwire._rpc import PLANS_METHODS
from eventwire.api import plans_pb2, plans_pb2_grpc
from eventwire.client._base import _INIT_DOC, _Client, _Rpc
from eventwire.client._policy import DEFAULT_TELEMETRY_TIMEOUT
from eventwire.client._twins import _Async, _Sync

__all__ = ["PlansClient", "SyncPlansClient"]


def _filter(event_name: str, rule: str, since: int, until: int) -> plans_pb2.QuarantineFilter:
    return plans_pb2.QuarantineFilter(event_name=event_name, rule=rule, since=since, until=until)


class _Plans(_Client):
    """The requests of ``eventwire.plans.v1.PlansService``, built once for both twins.

    Every call is safe to retry: applying the plan in force again changes
    nothing, and a replayed or discarded row is gone from the quarantine.
    """

    default_timeout = DEFAULT_TELEMETRY_TIMEOUT
    _methods = PLANS_METHODS
    _stub_class = plans_pb2_grpc.PlansServiceStub

    def _apply(
        self, document: str, source: str, dry_run: bool, timeout: float | None
    ) -> _Rpc[plans_pb2.ApplyPlanResponse]:
        request = plans_pb2.ApplyPlanRequest(document=document, source=source, dry_run=dry_run)
        return self._rpc("ApplyPlan", request, timeout)

    def _get(self, version: int, timeout: float | None) -> _Rpc[plans_pb2.Plan]:
        return self._rpc("GetPlan", plans_pb2.GetPlanRequest(version=version), timeout)

    def _diff(
        self, document: str, source: str, timeout: float | None
    ) -> _Rpc[plans_pb2.DiffPlanResponse]:
        request = plans_pb2.DiffPlanRequest(document=document, source=source)
        return self._rpc("DiffPlan", request, timeout)

    def _list(
        self, where: plans_pb2.QuarantineFilter, limit: int, samples: int, timeout: float | None
    ) -> _Rpc[plans_pb2.ListQuarantineResponse]:
        request = plans_pb2.ListQuarantineRequest(filter=where, limit=limit, samples=samples)
        return self._rpc("ListQuarantine", request, timeout)

    def _replay(
        self, where: plans_pb2.QuarantineFilter, dry_run: bool, timeout: float | None
    ) -> _Rpc[plans_pb2.ReplayQuarantineResponse]:
        request = plans_pb2.ReplayQuarantineRequest(filter=where, dry_run=dry_run)
        return self._rpc("ReplayQuarantine", request, timeout)

    def _discard(
        self, where: plans_pb2.QuarantineFilter, timeout: float | None
    ) -> _Rpc[plans_pb2.DiscardQuarantineResponse]:
        request = plans_pb2.DiscardQuarantineRequest(filter=where)
        return self._rpc("DiscardQuarantine", request, timeout)


class PlansClient(_Plans, _Async):
    """Async client of ``eventwire.plans.v1.PlansService``; use ``async with``."""

    __doc__ = (__doc__ or "") + _INIT_DOC

    async def apply_plan(
        self,
        document: str,
        *,
        source: str = "",
        dry_run: bool = False,
        timeout: float | None = None,
    ) -> plans_pb2.ApplyPlanResponse:
        """Apply a plan (YAML or JSON text); needs the admin scope."""
        return await self._call(self._apply(document, source, dry_run, timeout))

    async def get_plan(self, version: int = 0, *, timeout: float | None = None) -> plans_pb2.Plan:
        """Plan ``version`` (0: the one in force)."""
        return await self._call(self._get(version, timeout))

    async def diff_plan(
        self, document: str, *, source: str = "", timeout: float | None = None
    ) -> plans_pb2.DiffPlanResponse:
        return await self._call(self._diff(document, source, timeout))

    async def list_quarantine(
        self,
        *,
        event_name: str = "",
        rule: str = "",
        since: int = 0,
        until: int = 0,
        limit: int = 0,
        samples: int = 0,
        timeout: float | None = None,
    ) -> plans_pb2.ListQuarantineResponse:
        where = _filter(event_name, rule, since, until)
        return await self._call(self._list(where, limit, samples, timeout))

    async def replay_quarantine(
        self,
        *,
        event_name: str = "",
        rule: str = "",
        since: int = 0,
        until: int = 0,
        dry_run: bool = False,
        timeout: float | None = None,
    ) -> plans_pb2.ReplayQuarantineResponse:
        """Move what the plan in force accepts now into the events; needs the admin scope."""
        where = _filter(event_name, rule, since, until)
        return await self._call(self._replay(where, dry_run, timeout))

    async def discard_quarantine(
        self,
        *,
        event_name: str = "",
        rule: str = "",
        since: int = 0,
        until: int = 0,
        timeout: float | None = None,
    ) -> plans_pb2.DiscardQuarantineResponse:
        where = _filter(event_name, rule, since, until)
        return await self._call(self._discard(where, timeout))


class SyncPlansClient(_Plans, _Sync):
    """Blocking client of ``eventwire.plans.v1.PlansService``; use ``with``."""

    __doc__ = (__doc__ or "") + _INIT_DOC

    def apply_plan(
        self,
        document: str,
        *,
        source: str = "",
        dry_run: bool = False,
        timeout: float | None = None,
    ) -> plans_pb2.ApplyPlanResponse:
        """Apply a plan (YAML or JSON text); needs the admin scope."""
        return self._call(self._apply(document, source, dry_run, timeout))

    def get_plan(self, version: int = 0, *, timeout: float | None = None) -> plans_pb2.Plan:
        """Plan ``version`` (0: the one in force)."""
        return self._call(self._get(version, timeout))

    def diff_plan(
        self, document: str, *, source: str = "", timeout: float | None = None
    ) -> plans_pb2.DiffPlanResponse:
        return self._call(self._diff(document, source, timeout))

    def list_quarantine(
        self,
        *,
        event_name: str = "",
        rule: str = "",
        since: int = 0,
        until: int = 0,
        limit: int = 0,
        samples: int = 0,
        timeout: float | None = None,
    ) -> plans_pb2.ListQuarantineResponse:
        where = _filter(event_name, rule, since, until)
        return self._call(self._list(where, limit, samples, timeout))

    def replay_quarantine(
        self,
        *,
        event_name: str = "",
        rule: str = "",
        since: int = 0,
        until: int = 0,
        dry_run: bool = False,
        timeout: float | None = None,
    ) -> plans_pb2.ReplayQuarantineResponse:
        """Move what the plan in force accepts now into the events; needs the admin scope."""
        where = _filter(event_name, rule, since, until)
        return self._call(self._replay(where, dry_run, timeout))

    def discard_quarantine(
        self,
        *,
        event_name: str = "",
        rule: str = "",
        since: int = 0,
        until: int = 0,
        timeout: float | None = None,
    ) -> plans_pb2.DiscardQuarantineResponse:
        where = _filter(event_name, rule, since, until)
        return self._call(self._discard(where, timeout))
