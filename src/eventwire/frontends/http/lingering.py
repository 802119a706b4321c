"""The transport uvicorn is given by the gateway's guarded protocol
(:mod:`eventwire.frontends.http.protocol`): every call passes through, but
``close`` becomes the protocol's lingering close while a request is not fully read."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol


class Closer(Protocol):
    @property
    def lingering(self) -> bool: ...

    def close_transport(self) -> None: ...


class LingeringTransport:
    def __init__(self, transport: asyncio.Transport, protocol: Closer) -> None:
        self._transport = transport
        self._protocol = protocol

    def close(self) -> None:
        self._protocol.close_transport()

    def is_closing(self) -> bool:
        # Lingering is closing, for uvicorn: it must not serve a next request.
        return self._protocol.lingering or self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
