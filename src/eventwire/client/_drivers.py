"""The policies driven directly, outside grpc's interceptor chain: what eventwire's own clients run.

grpcio wraps every intercepted call in an extra task, which costs more than
all of the policies together; so the clients and the tracker call on
channels without interceptors, through these drivers. They reuse the
interceptors' bases (:mod:`eventwire.client._aio_interceptors`,
:mod:`eventwire.client._sync_interceptors`) and :mod:`eventwire.client._hedging`,
so a policy behaves the same whichever way it is applied.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable, Iterable, Iterator
from typing import Any, TypeVar

import grpc
from grpc.aio import ClientCallDetails

from eventwire.client._aio_interceptors import _AioBase
from eventwire.client._core import SETTLED_AFTER
from eventwire.client._hedging import aio_hedge, sync_hedge
from eventwire.client._sync_interceptors import _SyncBase

__all__ = ["AioDriver", "SyncDriver"]

Req = TypeVar("Req")
Resp = TypeVar("Resp")


class AioDriver(_AioBase):
    """One per client (or tracker), sharing its :class:`~eventwire.client._core.Resilience`."""

    async def unary(
        self,
        method: str,
        multicallable: grpc.aio.UnaryUnaryMultiCallable[Req, Resp],
        request: Req,
        timeout: float | None,
    ) -> Resp:
        """A unary call: deadline, retries, breaker, throttle and hedging."""
        plan = self.resilience.plan(method, timeout)
        if plan.hedging is None:
            call = await self._with_retries(
                plan,
                lambda t: multicallable(request, timeout=t, metadata=plan.metadata()),
                awaits=False,
            )
            return await call  # type: ignore[no-any-return]

        async def direct(details: grpc.aio.ClientCallDetails, req: Req) -> Any:
            return multicallable(req, timeout=details.timeout, metadata=plan.metadata())

        details = ClientCallDetails(method, timeout, None, None, None)
        call = await aio_hedge(plan, lambda t: self._details(details, t, plan), direct, request)
        return await call  # type: ignore[no-any-return]

    async def client_stream(
        self,
        method: str,
        multicallable: grpc.aio.StreamUnaryMultiCallable[Req, Resp],
        requests: list[Req],
        timeout: float | None,
    ) -> Resp:
        """Like :meth:`unary`, for a client stream sent again whole on each attempt."""
        plan = self.resilience.plan(method, timeout)
        # A list on purpose (the stubs' types ask for an iterator): each
        # attempt sends it again from the start.
        replayable: Any = requests
        call = await self._with_retries(
            plan,
            lambda t: multicallable(replayable, timeout=t, metadata=plan.metadata()),
            awaits=False,
        )
        return await call  # type: ignore[no-any-return]

    def server_stream(
        self,
        method: str,
        multicallable: grpc.aio.UnaryStreamMultiCallable[Req, Resp],
        request: Req,
        timeout: float | None,
    ) -> tuple[grpc.aio.UnaryStreamCall[Req, Resp], Callable[[], None]]:
        """Start a resumable server stream (WatchAlerts, ExportEvents): breaker, and a
        deadline only if given; never retried here (the caller resumes it, see
        ``client/_resume.py``).

        Returns the call and ``answered``, to call on its first message: the
        breaker's verdict (:class:`~eventwire.client._core.StreamVerdict`).
        """
        call, verdict = self._start_stream(
            method,
            timeout,
            lambda t, md: multicallable(request, timeout=t, metadata=md),
            settle_after=SETTLED_AFTER,
        )
        return call, verdict.answered

    def bidi_stream(
        self,
        method: str,
        multicallable: grpc.aio.StreamStreamMultiCallable[Req, Resp],
        requests: AsyncIterable[Req] | Iterable[Req],
        timeout: float | None,
    ) -> grpc.aio.StreamStreamCall[Req, Resp]:
        """Start a long-lived stream: breaker and (only if given) a deadline."""
        call, _ = self._start_stream(
            method,
            timeout,
            lambda t, md: multicallable(requests, timeout=t, metadata=md),  # type: ignore[arg-type]
        )
        return call  # type: ignore[no-any-return]


class SyncDriver(_SyncBase):
    """The blocking twin of :class:`AioDriver`."""

    def unary(
        self,
        method: str,
        multicallable: grpc.UnaryUnaryMultiCallable[Req, Resp],
        request: Req,
        timeout: float | None,
    ) -> Resp:
        plan = self.resilience.plan(method, timeout)

        def start(t: float | None) -> grpc.Future[Any]:
            return multicallable.future(request, timeout=t, metadata=plan.metadata())

        if plan.hedging is not None:
            return sync_hedge(plan, start)  # type: ignore[no-any-return]
        return self._with_retries(plan, start).result()  # type: ignore[no-any-return]

    def client_stream(
        self,
        method: str,
        multicallable: grpc.StreamUnaryMultiCallable[Req, Resp],
        requests: list[Req],
        timeout: float | None,
    ) -> Resp:
        plan = self.resilience.plan(method, timeout)
        result = self._with_retries(
            plan,
            lambda t: multicallable.future(iter(requests), timeout=t, metadata=plan.metadata()),
        )
        return result.result()  # type: ignore[no-any-return]

    def server_stream(
        self,
        method: str,
        multicallable: grpc.UnaryStreamMultiCallable[Req, Resp],
        request: Req,
        timeout: float | None,
    ) -> tuple[Any, Callable[[], None]]:
        plan = self.resilience.plan(method, timeout, retries=False, default_timeout=False)
        call, verdict = self._open_stream(
            plan,
            lambda t: multicallable(request, timeout=t, metadata=plan.metadata()),
            settle_after=SETTLED_AFTER,
        )
        return call, verdict.answered

    def bidi_stream(
        self,
        method: str,
        multicallable: grpc.StreamStreamMultiCallable[Req, Resp],
        requests: Iterator[Req],
        timeout: float | None,
    ) -> Any:
        plan = self.resilience.plan(method, timeout, retries=False, default_timeout=False)
        return self._open(
            plan, lambda t: multicallable(requests, timeout=t, metadata=plan.metadata())
        )
