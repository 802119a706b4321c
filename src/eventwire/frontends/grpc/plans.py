"""The servicer of ``eventwire.plans.v1.PlansService``: calls the plans service, nothing else."""

from __future__ import annotations

import grpc

from eventwire.api import plans_pb2, plans_pb2_grpc
from eventwire.ingest.plans_service import PlansService
from eventwire.security.auth import current_tenant

Context = grpc.aio.ServicerContext[object, object]


class PlansServicer(plans_pb2_grpc.PlansServiceServicer):
    def __init__(self, service: PlansService) -> None:
        self._service = service

    async def ApplyPlan(
        self, request: plans_pb2.ApplyPlanRequest, context: Context
    ) -> plans_pb2.ApplyPlanResponse:
        return await self._service.apply_plan(request, current_tenant())

    async def GetPlan(self, request: plans_pb2.GetPlanRequest, context: Context) -> plans_pb2.Plan:
        return await self._service.get_plan(request)

    async def DiffPlan(
        self, request: plans_pb2.DiffPlanRequest, context: Context
    ) -> plans_pb2.DiffPlanResponse:
        return await self._service.diff_plan(request)

    async def ListQuarantine(
        self, request: plans_pb2.ListQuarantineRequest, context: Context
    ) -> plans_pb2.ListQuarantineResponse:
        return await self._service.list_quarantine(request, current_tenant())

    async def ReplayQuarantine(
        self, request: plans_pb2.ReplayQuarantineRequest, context: Context
    ) -> plans_pb2.ReplayQuarantineResponse:
        return await self._service.replay_quarantine(request, current_tenant())

    async def DiscardQuarantine(
        self, request: plans_pb2.DiscardQuarantineRequest, context: Context
    ) -> plans_pb2.DiscardQuarantineResponse:
        return await self._service.discard_quarantine(request, current_tenant())
