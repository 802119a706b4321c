"""Identifiers shared by the server (assigned ids) and the client (tracker ids)."""

from __future__ import annotations

import os
import threading
import time
import uuid

_POOL_BYTES = 4096
_pool = b""
_pool_at = 0
_pool_lock = threading.Lock()


def _random10() -> bytes:
    """10 bytes from the OS's CSPRNG, drawn 4 KiB at a time: one getrandom
    syscall per ~400 ids instead of one per id (a few us each in a VM)."""
    global _pool, _pool_at  # noqa: PLW0603 - a module-level pool, reset at fork
    with _pool_lock:
        if _pool_at + 10 > len(_pool):
            _pool, _pool_at = os.urandom(_POOL_BYTES), 0
        chunk = _pool[_pool_at : _pool_at + 10]
        _pool_at += 10
        return chunk


def _after_fork() -> None:
    # A child must never hand out the bytes its parent will hand out too.
    global _pool, _pool_at, _pool_lock
    _pool, _pool_at, _pool_lock = b"", 0, threading.Lock()


os.register_at_fork(after_in_child=_after_fork)


def uuid7() -> str:
    """A UUIDv7 (RFC 9562) as text: 48-bit millisecond time, then 74 random bits.

    Sortable by creation time, so ids assigned in order stay close together in
    the store's index; the random part keeps them unguessable and unique across
    processes without coordination.
    """
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(_random10(), "big")
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
