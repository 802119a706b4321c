"""Building, reading back and crashing tracker spools in tests."""

from __future__ import annotations

from eventwire.client.tracker.spool import Spool


def payloads(n: int, start: int = 0, size: int = 100) -> list[bytes]:
    return [f"{i:08d}".encode().ljust(size, b"x") for i in range(start, start + n)]


def labels(n: int, epoch: int = 1) -> list[tuple[int, int]]:
    return [(epoch, n)]


def drain(spool: Spool, max_events: int = 1000, max_bytes: int = 1 << 20) -> list[bytes]:
    """Read everything, acknowledging each batch as it comes."""
    out: list[bytes] = []
    while (read := spool.read(max_events, max_bytes)) is not None:
        out.extend(read.events)
        spool.ack(read.segment, len(read.events))
    return out


def crash(spool: Spool) -> None:
    """Drop every descriptor without an orderly close: what SIGKILL leaves behind."""
    spool.forget_after_fork()
