"""What the read side may hold for its clients, and what a client too slow for it is told."""

from __future__ import annotations

from dataclasses import dataclass

from eventwire._errors import Overloaded
from eventwire.reads.feed import FEED_BYTES


@dataclass(frozen=True, slots=True)
class ReadLimits:
    """What the read side may hold in memory, and how long a stalled reader is kept.

    ``feed_bytes`` bounds the live feed; the cache of rendered messages that
    watchers with one filter share gets a quarter of it more. A streaming
    reply holds at most ``stream_buffer_bytes`` for its client; a client that
    leaves that buffer full for ``stream_stall_seconds`` is told where to
    resume and disconnected.
    """

    feed_bytes: int = FEED_BYTES
    stream_buffer_bytes: int = 256 << 10
    stream_stall_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.feed_bytes < 0 or self.stream_buffer_bytes < 1 or self.stream_stall_seconds <= 0:
            raise ValueError("need feed_bytes >= 0, stream_buffer_bytes >= 1, stall > 0")


class ReaderTooSlow(Overloaded):
    """A streaming reply's client stopped reading for too long; ``cursor`` is where to resume."""

    def __init__(self, cursor: str, limits: ReadLimits) -> None:
        where = f"resume with after={cursor!r}" if cursor else "resume with the same request"
        super().__init__(
            f"the client read nothing for {limits.stream_stall_seconds:g} s with "
            f"{limits.stream_buffer_bytes} bytes waiting for it; the stream is closed: {where}",
            0,
        )
        self.cursor = cursor
