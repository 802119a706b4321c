"""Iterators over resumable server streams: :class:`ResumableStream` and its blocking twin.

Both drive the same I/O-free :class:`~eventwire.client._resume.Resumption`:
they open a call, hand each message on, and on a break sleep for as long as
it says and resume after the last cursor handed on. Only the waiting differs.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncGenerator, Callable, Generator
from types import TracebackType
from typing import Any, Generic, Protocol, Self, TypeVar

from eventwire.client._backoff import is_testing
from eventwire.client._exceptions import RpcError, rpc_errors
from eventwire.client._resume import Resumption

__all__ = ["ResumableStream", "SyncResumableStream"]


class _HasCursor(Protocol):
    @property
    def cursor(self) -> str: ...


M = TypeVar("M", bound=_HasCursor)

OpenCall = Callable[[Any, float | None], tuple[Any, Callable[[], None]]]
"""``(request, timeout) -> (call, answered)``: one call of the stream's method, with the
client's breaker; ``answered()`` on its first message gives the breaker its verdict."""


class _Stream(Generic[M]):
    def __init__(self, state: Resumption) -> None:
        self._state = state

    @property
    def cursor(self) -> str:
        """The cursor of the last message handed out (before the first: the ``after`` given).

        Persist it and pass it as ``after=`` later to go on from there, in this
        process or another, through any replica.
        """
        return self._state.cursor

    @property
    def reconnects(self) -> int:
        """How many times the stream was resumed after a break."""
        return self._state.reconnects

    def _stop(self) -> None:
        """No more calls; the one in flight is cancelled, a reconnect sleep cut short.

        The reading loop then ends without an error. Also what closing the
        client does to every stream of it that is still open.
        """
        call = self._state.stop()
        if call is not None:
            call.cancel()
        self._wake()

    def _wake(self) -> None:
        raise NotImplementedError


def _cancelled_here() -> bool:
    """Whether the running task itself is being cancelled (not just a call it reads)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class ResumableStream(_Stream[M]):
    """``async for`` over a server stream that reconnects and resumes by itself.

    Returned by :meth:`TelemetryClient.watch_alerts` and
    :meth:`AnalyticsClient.export_events`. A break the client's
    :class:`RetryPolicy` calls retryable (UNAVAILABLE: a lost connection, a
    server restarting or draining) is followed by a backoff sleep and a new
    call that resumes after :attr:`cursor`, so every message arrives once. Any
    other error is raised as the client's exception (:class:`OutOfRangeError`
    for a cursor older than retention). Leave early with ``async with`` or
    :meth:`aclose`: the call in flight is cancelled. Cancelling the task that
    reads it cancels the call too, and closing the client ends the loop.
    """

    def __init__(self, state: Resumption, open_call: OpenCall) -> None:
        super().__init__(state)
        self._woken: asyncio.Event | None = None
        self._messages = self._run(open_call)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> M:
        return await anext(self._messages)

    async def aclose(self) -> None:
        """Stop: cancels the call in flight; no more calls are made. From the task
        that reads it (another task may close the client instead)."""
        self._stop()
        await self._messages.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _wake(self) -> None:
        if self._woken is not None:
            self._woken.set()

    async def _sleep(self, delay: float) -> None:
        # Under set_testing() the sleep is skipped, but the loop still yields:
        # an open circuit fails without any I/O, and must not freeze the loop.
        if is_testing() or delay <= 0:
            await asyncio.sleep(0)
            return
        if self._woken is None:
            self._woken = asyncio.Event()
        if self._state.stopped:
            return  # stopped before there was an event to set
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._woken.wait(), delay)

    async def _run(self, open_call: OpenCall) -> AsyncGenerator[M, None]:
        state = self._state
        while not state.stopped:
            request, timeout = state.next_request()
            delay: float | None
            try:
                call, answered = open_call(request, timeout)
                state.opened(call)
                try:
                    with rpc_errors():
                        async for message in call:
                            answered()
                            state.delivered(message.cursor)
                            yield message
                finally:
                    # Leaving early (break, aclose, a cancelled task) ends the call.
                    call.cancel()
            except RpcError as exc:
                delay = state.failed(exc)
                if delay is None:
                    if state.stopped:
                        return
                    raise
            except asyncio.CancelledError:
                # grpc.aio reports a call cancelled from here (by _stop, or by the
                # client closing its channel) as CancelledError: that is the end,
                # unless this task itself is being cancelled.
                if state.stopped and not _cancelled_here():
                    return
                raise
            else:
                delay = state.ended()
                if delay is None:
                    return
            await self._sleep(delay)


class SyncResumableStream(_Stream[M]):
    """Blocking twin of :class:`ResumableStream`: a ``for`` loop, ``with`` to leave early.

    :meth:`close` may be called from another thread to stop a loop blocked
    waiting for the next message (so may the client's ``close()``): the loop
    then ends without an error.
    """

    def __init__(self, state: Resumption, open_call: OpenCall) -> None:
        super().__init__(state)
        self._woken = threading.Event()
        self._messages = self._run(open_call)

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> M:
        return next(self._messages)

    def close(self) -> None:
        """Stop: cancels the call in flight (from any thread); no more calls are made."""
        self._stop()
        # ValueError: another thread is inside next(); the cancelled call ends its loop.
        with contextlib.suppress(ValueError):
            self._messages.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _wake(self) -> None:
        self._woken.set()

    def _run(self, open_call: OpenCall) -> Generator[M, None, None]:
        state = self._state
        while not state.stopped:
            request, timeout = state.next_request()
            delay: float | None
            try:
                try:
                    call, answered = open_call(request, timeout)
                except ValueError:
                    # grpcio's "Channel closed!": the client was closed meanwhile.
                    if state.stopped:
                        return
                    raise
                state.opened(call)
                if state.stopped:
                    # Stopped between the check above and the call's start.
                    call.cancel()
                try:
                    with rpc_errors():
                        for message in call:
                            answered()
                            state.delivered(message.cursor)
                            yield message
                finally:
                    call.cancel()
            except RpcError as exc:
                delay = state.failed(exc)
                if delay is None:
                    if state.stopped:
                        return
                    raise
            else:
                delay = state.ended()
                if delay is None:
                    return
            # Cut short by close().
            self._woken.wait(0 if is_testing() else delay)
