"""The limits of an HTTP listener, and the counts they are checked against.

:class:`HttpLimits` are the numbers (see :mod:`.protocol` for what each bounds);
:class:`Refusals` and :class:`Handshakes` count, per listener, the connections
that hold a descriptor outside the protocol's own set of connections.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Self

from eventwire.config import ServerConfig


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """The limits of one HTTP listener; see :mod:`.protocol`'s docstring."""

    max_header_bytes: int = 16 * 1024
    """Request line and headers together."""
    header_timeout: float = 10.0
    idle_timeout: float = 30.0
    body_timeout: float = 30.0
    max_connections: int = 1000
    max_body_bytes: int = 4 << 20
    handshake_timeout: float = 10.0
    """Seconds a TLS connection gets to finish its handshake (TLS listeners only)."""

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            if getattr(self, name) <= 0:
                raise ValueError(f"HttpLimits.{name} must be positive")

    @classmethod
    def from_config(cls, config: ServerConfig) -> Self:
        """The gateway's limits: the ``http_*`` flags, the cap lowered by :func:`connection_cap`."""
        return cls(
            max_header_bytes=config.http_max_header_bytes,
            header_timeout=config.http_header_timeout,
            idle_timeout=config.http_idle_timeout,
            body_timeout=config.http_body_timeout,
            max_connections=connection_cap(config.http_max_connections),
            max_body_bytes=config.http_max_body_bytes,
            handshake_timeout=config.handshake_timeout,
        )

    @classmethod
    def for_metrics(cls) -> Self:
        """/metrics serves scrapers: a few connections, small heads, no request body."""
        return cls(max_header_bytes=8192, max_connections=64, max_body_bytes=1024)


def connection_cap(requested: int) -> int:
    """``requested``, lowered to half the process's descriptor limit (``ulimit -n``):
    the other half stays for gRPC, storage and the listeners themselves."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return requested
    return max(1, min(requested, soft // 2))


class Refusals:
    """Per listener: connections refused at the cap that are still lingering.

    Those hold a descriptor each outside the cap, so their number is bounded
    too: beyond :attr:`budget`, a refusal is written and the connection closed
    at once (the client may then see a reset instead of the 503, but the
    process keeps descriptors for the connections it serves).
    """

    def __init__(self, max_connections: int) -> None:
        self.budget = max(8, max_connections // 8)
        self.lingering = 0


class Handshakes:
    """Per TLS listener: connections accepted whose handshake is under way.

    The event loop runs the handshake and tells the HTTP protocol of the
    connection only once it succeeded; a failed or abandoned one is closed
    without a word. So each is counted from its acceptance (when the loop
    makes its protocol) until its protocol hears of it or the handshake's
    deadline has passed (and the loop has closed it).
    """

    _SLACK: Final = 1.0

    def __init__(self, timeout: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._timeout = timeout
        self._clock = clock
        self._until: dict[object, float] = {}
        """Insertion order is deadline order: every entry gets the same timeout."""

    def begin(self, connection: object) -> None:
        self._until[connection] = self._clock() + self._timeout + self._SLACK

    def end(self, connection: object) -> None:
        self._until.pop(connection, None)

    def __len__(self) -> int:
        now = self._clock()
        expired = []
        for connection, until in self._until.items():
            if until > now:
                break
            expired.append(connection)
        for connection in expired:
            del self._until[connection]
        return len(self._until)
