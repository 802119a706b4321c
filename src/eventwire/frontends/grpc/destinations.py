"""``destinations.DestinationsService``: thin, over
:class:`~eventwire.destinations.ops.DestinationOps` (errors become status in the gate)."""

from __future__ import annotations

import grpc

from eventwire.api import destinations_pb2 as pb
from eventwire.api import destinations_pb2_grpc
from eventwire.destinations.ops import DestinationOps

Context = grpc.aio.ServicerContext[object, object]


class DestinationsServicer(destinations_pb2_grpc.DestinationsServiceServicer):
    def __init__(self, ops: DestinationOps) -> None:
        self._ops = ops

    async def ListDestinations(
        self, request: pb.ListDestinationsRequest, context: Context
    ) -> pb.ListDestinationsResponse:
        return await self._ops.list_destinations(request)

    async def PauseDestination(
        self, request: pb.DestinationRequest, context: Context
    ) -> pb.Destination:
        return await self._ops.pause_destination(request)

    async def ResumeDestination(
        self, request: pb.DestinationRequest, context: Context
    ) -> pb.Destination:
        return await self._ops.resume_destination(request)

    async def ReplayDestination(
        self, request: pb.ReplayDestinationRequest, context: Context
    ) -> pb.Destination:
        return await self._ops.replay_destination(request)

    async def ListDeadLetters(
        self, request: pb.ListDeadLettersRequest, context: Context
    ) -> pb.ListDeadLettersResponse:
        return await self._ops.list_dead_letters(request)

    async def RetryDeadLetters(
        self, request: pb.DeadLettersRequest, context: Context
    ) -> pb.DeadLettersResponse:
        return await self._ops.retry_dead_letters(request)

    async def DiscardDeadLetters(
        self, request: pb.DeadLettersRequest, context: Context
    ) -> pb.DeadLettersResponse:
        return await self._ops.discard_dead_letters(request)
