"""``grpc.health.v1.Health`` with all three methods: Check, Watch and List.

grpcio-health-checking implements Check and Watch; its List (added to the
protocol in 2024) answers UNIMPLEMENTED. List is a snapshot of every service the
server reports on, with its status, for tools that want the whole picture in
one call.
"""

from __future__ import annotations

from typing import Any, Final

import grpc
from grpc_health.v1 import health, health_pb2

# types-grpcio-health-checking predates List and its messages.
_pb: Any = health_pb2

MAX_LISTED: Final = 100
"""The protocol lets a server cap List; beyond this it answers RESOURCE_EXHAUSTED."""


class HealthServicer(health.aio.HealthServicer):
    async def List(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        # The base class keeps the one status table Check and Watch answer from.
        statuses: dict[str, int] = dict(self._server_status)  # type: ignore[attr-defined]
        if len(statuses) > MAX_LISTED:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"more than {MAX_LISTED} services; use Check or Watch per service",
            )
        return _pb.HealthListResponse(
            statuses={
                name: _pb.HealthCheckResponse(status=status) for name, status in statuses.items()
            }
        )
