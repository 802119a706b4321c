"""What a request may cost: per-tenant rate limits, the same for every front door."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Final

from google.protobuf.message import Message

from eventwire._errors import Overloaded
from eventwire.api import analytics_pb2


class RateLimiter:
    """One token bucket per tenant, refilled at ``rate`` per second up to ``burst``.

    A request is admitted when its tenant's bucket holds its cost (or, for a
    request costing more than ``burst``, when the bucket is full); the whole
    cost is then taken, which may leave the bucket in debt. So a large batch is
    never refused forever, and its tenant pays for it afterwards. Buckets exist
    only for tenants in the token file (or the one shared tenant), so their
    number is bounded.
    """

    def __init__(
        self, rate: float, burst: float = 0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = burst or max(1.0, rate)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        # The front doors charge from their own threads (the HTTP gateway runs
        # on one of its own): a bucket's read-modify-write must not interleave.
        self._lock = threading.Lock()

    def charge(self, tenant: str, cost: int) -> None:
        """Take ``cost`` from ``tenant``'s bucket or raise :class:`Overloaded`."""
        with self._lock:
            self._charge(tenant, cost)

    def _charge(self, tenant: str, cost: int) -> None:
        now = self._clock()
        level, at = self._buckets.get(tenant, (self.burst, now))
        level = min(self.burst, level + (now - at) * self.rate)
        need = min(float(cost), self.burst)
        if level < need:
            self._buckets[tenant] = (level, now)
            wait_ms = max(1, math.ceil((need - level) / self.rate * 1000))
            raise Overloaded(
                f"rate limit of {self.rate:g} per second for this tenant exceeded; "
                f"retry in {wait_ms} ms",
                wait_ms,
            )
        self._buckets[tenant] = (level - cost, now)


BYTES_PER_UNIT: Final = 16 << 10
"""A request costs one unit more per this many bytes of it (see :func:`cost_of`)."""


def cost_of(message: object, bytes_per_unit: int = BYTES_PER_UNIT) -> int:
    """What a request message costs: one per event it carries (at least one),
    plus one per whole ``bytes_per_unit`` of its encoded size (0: count only).

    So a tenant's rate limit bounds the bytes it sends as well as its events:
    a small event costs 1, a maximum-size alert (~70 KB) 5, a 4 MiB batch of
    ten events 266.
    """
    events = max(1, len(message.events)) if isinstance(message, analytics_pb2.EventBatch) else 1
    if bytes_per_unit and isinstance(message, Message):
        return events + message.ByteSize() // bytes_per_unit
    return events


HELD_EVENT_OVERHEAD: Final = 320
"""Bytes a decoded event costs beyond its encoded size while a stream holds it
(the row tuple and its strings: ~310 measured for a small event)."""

_BUDGET_PUSHBACK_MS: Final = 250


class ByteBudget:
    """One budget for the request bytes held at once, across every call and stream.

    Without it memory grows with what clients send: each stream may hold up
    to its own limit, and there is no limit on streams. Every message is
    charged on arrival with :meth:`take` (its encoded size, plus
    :data:`HELD_EVENT_OVERHEAD` per event a stream keeps decoded) and
    :meth:`release`\\ d once the call is done with it. Past ``limit``, new
    messages are refused with :class:`Overloaded`; a message arriving while
    nothing at all is held is admitted whatever its size, so that every
    request small enough for the other limits can eventually get through.
    Two integer operations per message, no lock: it runs on the event loop.
    """

    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError("limit must not be negative")
        self.limit = limit
        self.held = 0

    def take(self, size: int) -> None:
        """Charge ``size`` bytes or raise :class:`Overloaded` (0 limit: never)."""
        held = self.held + size
        if self.limit and held > self.limit and self.held:
            raise Overloaded(
                f"the server holds {self.held} bytes of requests, its limit is {self.limit} "
                "(--max-inflight-bytes); retry later",
                _BUDGET_PUSHBACK_MS,
            )
        self.held = held

    def release(self, size: int) -> None:
        self.held -= size
