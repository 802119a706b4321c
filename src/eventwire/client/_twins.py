"""The async and blocking halves of every client: the policy drivers and the channel.

A client is a service's requests (:mod:`eventwire.client._analytics`,
:mod:`eventwire.client._telemetry`) mixed with one of these: :class:`_Async`
runs them on a grpc.aio channel, :class:`_Sync` on a blocking one, through
the policy drivers (:mod:`eventwire.client._drivers`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import Any, Self

import grpc

from eventwire.client._base import Msg, Resp, _Client, _Resumable, _Rpc
from eventwire.client._channel import plain_aio_channel, plain_sync_channel
from eventwire.client._drivers import AioDriver, SyncDriver
from eventwire.client._exceptions import rpc_errors
from eventwire.client._streams import ResumableStream, SyncResumableStream


class _Async(_Client):
    """The async policy drivers on a grpc.aio channel without interceptors: the same
    policy code the interceptors run, minus grpcio's per-call interceptor task."""

    channel: grpc.aio.Channel

    def _connect(self) -> None:
        self.channel = plain_aio_channel(self.target, self.config.credentials, self.config.options)
        self._driver = AioDriver(self.resilience)

    async def _call(self, rpc: _Rpc[Resp]) -> Resp:
        callable_ = getattr(self._stub, rpc.name)
        return await self._driver.unary(rpc.method, callable_, rpc.request, rpc.timeout)

    async def _send(self, rpc: _Rpc[Resp]) -> Resp:
        # The requests are a list on purpose (the stubs' types ask for an
        # iterator): the driver retries only streams it can send again.
        callable_ = getattr(self._stub, rpc.name)
        return await self._driver.client_stream(rpc.method, callable_, rpc.request, rpc.timeout)

    async def _exchange(self, rpc: _Rpc[Resp]) -> AsyncIterator[Resp]:
        call = self._driver.bidi_stream(
            rpc.method, getattr(self._stub, rpc.name), rpc.request, rpc.timeout
        )
        try:
            with rpc_errors():
                async for reply in call:
                    yield reply
        finally:
            # Leaving early (break, error, aclose) must not leave the stream open.
            call.cancel()

    def _resume(self, stream: _Resumable[Msg]) -> ResumableStream[Any]:
        callable_ = getattr(self._stub, stream.name)
        resumable: ResumableStream[Any] = ResumableStream(
            self._resumption(stream),
            lambda request, timeout: self._driver.server_stream(
                stream.method, callable_, request, timeout
            ),
        )
        self._streams.add(resumable)
        return resumable

    async def close(self, grace: float | None = None) -> None:
        """Close the channel; calls in flight are cancelled after ``grace`` seconds.

        Watches and exports still open end their loops (without an error) at once.
        """
        if not self._closed:
            self._closed = True
            self._stop_streams()
            await self.channel.close(grace)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class _Sync(_Client):
    """The blocking twin of :class:`_Async`."""

    channel: grpc.Channel

    def _connect(self) -> None:
        self.channel = plain_sync_channel(self.target, self.config.credentials, self.config.options)
        self._driver = SyncDriver(self.resilience)

    def _call(self, rpc: _Rpc[Resp]) -> Resp:
        callable_ = getattr(self._stub, rpc.name)
        reply: Resp = self._driver.unary(rpc.method, callable_, rpc.request, rpc.timeout)
        return reply

    def _send(self, rpc: _Rpc[Resp]) -> Resp:
        callable_ = getattr(self._stub, rpc.name)
        reply: Resp = self._driver.client_stream(rpc.method, callable_, rpc.request, rpc.timeout)
        return reply

    def _exchange(self, rpc: _Rpc[Resp]) -> Iterator[Resp]:
        call = self._driver.bidi_stream(
            rpc.method, getattr(self._stub, rpc.name), rpc.request, rpc.timeout
        )
        try:
            with rpc_errors():
                yield from call
        finally:
            call.cancel()

    def _resume(self, stream: _Resumable[Msg]) -> SyncResumableStream[Any]:
        callable_ = getattr(self._stub, stream.name)
        resumable: SyncResumableStream[Any] = SyncResumableStream(
            self._resumption(stream),
            lambda request, timeout: self._driver.server_stream(
                stream.method, callable_, request, timeout
            ),
        )
        self._streams.add(resumable)
        return resumable

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._stop_streams()
            self.channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
