"""Identifiers shared by the server (assigned ids) and the client (tracker ids)."""

from __future__ import annotations

import os
import time
import uuid


def uuid7() -> str:
    """A UUIDv7 (RFC 9562) as text: 48-bit millisecond time, then 74 random bits.

    Sortable by creation time, so ids assigned in order stay close together in
    the store's index; the random part keeps them unguessable and unique across
    processes without coordination.
    """
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & 0xFFFF_FFFF_FFFF) << 80 | rand & ((1 << 80) - 1)
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # RFC 9562 variant
    # Formatted directly: uuid.UUID's constructor and __str__ were ~1.5 us of
    # every request without an event_id.
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def random_id() -> str:
    """An unguessable id (UUIDv4, 122 random bits) for things that must not leak order."""
    return str(uuid.uuid4())
