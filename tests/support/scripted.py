"""Small scripted grpc.aio servers: each call plays the next step of a script.

They are real servers on 127.0.0.1:0 built on the generated servicer base
classes, so the client under test goes through real sockets, real HTTP/2 and
real status codes. Steps: answer, fail with a code (and pushback), stall until
cancelled, or wait on an event the test controls. Every call's arrival time,
request and fate (answered, failed, cancelled) is recorded.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc

from eventwire.api import analytics_pb2, analytics_pb2_grpc, telemetry_pb2, telemetry_pb2_grpc


@dataclass(frozen=True)
class Ok:
    delay: float = 0.0


@dataclass(frozen=True)
class Fail:
    code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE
    pushback: str | None = None


@dataclass(frozen=True)
class Stall:
    """Never answer; the call ends when the client cancels it or its deadline passes."""


Step = Ok | Fail | Stall


@dataclass
class Seen:
    method: str
    at: float
    request: Any
    time_remaining: float | None
    metadata: dict[str, Any] = field(default_factory=dict)
    fate: str = "pending"


@dataclass
class Script:
    steps: dict[str, deque[Step]] = field(default_factory=dict)
    default: Step = field(default_factory=Ok)
    seen: list[Seen] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def play(self, method: str, steps: Iterable[Step]) -> None:
        self.steps.setdefault(method, deque()).extend(steps)

    def calls(self, method: str | None = None) -> list[Seen]:
        return [s for s in self.seen if method is None or s.method == method]

    async def wait_for(self, predicate: Any, timeout: float = 10.0) -> None:
        """Until ``predicate(self)`` holds: driven by the server's own events, not sleeps."""
        async with asyncio.timeout(timeout):
            while not predicate(self):
                self.changed.clear()
                await self.changed.wait()

    def _note(self) -> None:
        self.changed.set()

    async def run(self, method: str, request: Any, context: Any, reply: Any) -> Any:
        seen = Seen(
            method,
            time.monotonic(),
            request,
            context.time_remaining(),
            dict(context.invocation_metadata() or ()),
        )
        self.seen.append(seen)
        self._note()
        queue = self.steps.get(method)
        step = queue.popleft() if queue else self.default
        try:
            if isinstance(step, Stall):
                await asyncio.Event().wait()
            if isinstance(step, Ok) and step.delay:
                await asyncio.sleep(step.delay)
        except asyncio.CancelledError:
            seen.fate = "cancelled"
            self._note()
            raise
        if isinstance(step, Fail):
            seen.fate = f"failed {step.code.name}"
            self._note()
            if step.pushback is not None:
                context.set_trailing_metadata((("grpc-retry-pushback-ms", step.pushback),))
            await context.abort(step.code, f"scripted {step.code.name}")
        seen.fate = "answered"
        self._note()
        return reply


class _Analytics(analytics_pb2_grpc.AnalyticsServiceServicer):
    def __init__(self, script: Script) -> None:
        self.script = script

    async def TrackEvent(
        self, request: analytics_pb2.TrackEventRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> analytics_pb2.TrackEventResponse:
        reply = analytics_pb2.TrackEventResponse(success=True, event_id=request.event_id)
        return await self.script.run("TrackEvent", request, context, reply)  # type: ignore[no-any-return]

    async def StreamEvents(
        self,
        request_iterator: AsyncIterator[analytics_pb2.TrackEventRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> analytics_pb2.TrackEventResponse:
        events = [e async for e in request_iterator]
        reply = analytics_pb2.TrackEventResponse(success=True, accepted=len(events))
        return await self.script.run("StreamEvents", events, context, reply)  # type: ignore[no-any-return]

    async def CountEvents(
        self, request: analytics_pb2.CountEventsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> analytics_pb2.CountEventsResponse:
        reply = analytics_pb2.CountEventsResponse(count=7)
        return await self.script.run("CountEvents", request, context, reply)  # type: ignore[no-any-return]


class _Telemetry(telemetry_pb2_grpc.TelemetryServiceServicer):
    def __init__(self, script: Script) -> None:
        self.script = script

    async def ReportAlert(
        self, request: telemetry_pb2.AlertRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> telemetry_pb2.AlertResponse:
        reply = telemetry_pb2.AlertResponse(
            acknowledged=True, tracking_id=f"t-{request.idempotency_key}"
        )
        return await self.script.run("ReportAlert", request, context, reply)  # type: ignore[no-any-return]

    async def GetAlert(
        self, request: telemetry_pb2.GetAlertRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> telemetry_pb2.Alert:
        reply = telemetry_pb2.Alert(tracking_id=request.tracking_id)
        return await self.script.run("GetAlert", request, context, reply)  # type: ignore[no-any-return]


@dataclass
class ScriptedServer:
    address: str
    script: Script
    server: grpc.aio.Server


@asynccontextmanager
async def scripted_server(
    analytics: Any = None, telemetry: Any = None
) -> AsyncIterator[ScriptedServer]:
    """A server playing one script for both services (or custom servicers, if given)."""
    script = Script()
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    # Through Any: the contract may grow RPCs these scripts do not play
    # (the base class answers UNIMPLEMENTED for them at run time).
    make_analytics: Any = _Analytics
    make_telemetry: Any = _Telemetry
    analytics_pb2_grpc.add_AnalyticsServiceServicer_to_server(
        analytics or make_analytics(script), server
    )
    telemetry_pb2_grpc.add_TelemetryServiceServicer_to_server(
        telemetry or make_telemetry(script), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield ScriptedServer(f"127.0.0.1:{port}", script, server)
    finally:
        await server.stop(None)
