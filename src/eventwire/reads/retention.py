"""Retention: expired rows deleted in small chunks, so ingest never waits on a purge.

Each chunk is one short transaction of at most ``chunk`` rows (the oldest, in
commit order, received before the cut-off). After each chunk the purger rests
for as long as the chunk took, so it holds the writer at most half the time
however much has expired; on SQLite it shares the pipeline's writer thread,
so commits queue behind at most one chunk. On PostgreSQL one replica at a time
purges (an advisory lock), the others skip the pass.

Destinations: rows a destination has not delivered yet are never purged
(``floor`` says, per kind, what every destination carrying it delivered),
unless ``overrides`` (``--retention-overrides-destinations``): then expired
rows go anyway, and those past the floor are counted and logged as skipped.

The tracking plan's quarantine (docs/tracking-plans.md) is kept as long as
events are, counted from when each row was quarantined.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final

from eventwire.ingest.service import now_ms
from eventwire.store.base import Kind, Position, Store, StoreError

Floor = Callable[[Kind], Awaitable[Position | None]]

log = logging.getLogger("eventwire.retention")

MIN_PAUSE: Final = 0.005
"""Seconds between two chunks at least: a commit waiting behind one always gets in."""


class Retention:
    def __init__(
        self,
        store: Store,
        keep_ms: dict[Kind, int],
        *,
        chunk: int = 1000,
        interval: float = 60.0,
        clock: Callable[[], int] = now_ms,
        floor: Floor | None = None,
        overrides: bool = False,
    ) -> None:
        """``keep_ms``: how long each kind is kept; kinds missing or 0 are kept forever."""
        self._store = store
        self._keep = {kind: ms for kind, ms in keep_ms.items() if ms > 0}
        self._chunk = chunk
        self._interval = interval
        self._clock = clock
        self._floor = floor
        self._overrides = overrides
        self.skipped: dict[Kind, int] = {"events": 0, "alerts": 0}
        """Undelivered rows purged because ``overrides`` said so, per kind."""
        self._task: asyncio.Task[None] | None = None
        self.quarantine_purged = 0
        """Quarantined rows the last pass deleted."""

    @property
    def enabled(self) -> bool:
        return bool(self._keep)

    def start(self) -> None:
        if self.enabled:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="eventwire-retention"
            )

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def purge_once(self) -> dict[Kind, int]:
        """One pass over every kind; rows deleted per kind (the quarantine's in
        :attr:`quarantine_purged`)."""
        deleted: dict[Kind, int] = {}
        store = self._store
        for kind, keep in self._keep.items():
            cutoff = self._clock() - keep
            floor = None if self._floor is None else await self._floor(kind)
            total = await self._chunks(functools.partial(store.purge, kind, upto=floor), cutoff)
            if floor is not None and self._overrides:
                skipped = await self._chunks(
                    functools.partial(store.purge, kind, upto=None), cutoff
                )
                if skipped:
                    self.skipped[kind] += skipped
                    mark = await store.retained_after(kind)
                    log.warning(
                        "retention purged %d %s a destination had not delivered (positions "
                        "after %s up to %s), as --retention-overrides-destinations allows",
                        skipped,
                        kind,
                        tuple(floor),
                        tuple(mark),
                    )
                total += skipped
            deleted[kind] = total
        if "events" in self._keep:
            cutoff = self._clock() - self._keep["events"]
            self.quarantine_purged = await self._chunks(store.purge_quarantine, cutoff)
        return deleted

    async def _chunks(self, purge: Callable[[int, int], Awaitable[int]], cutoff: int) -> int:
        total = 0
        while True:
            started = time.monotonic()
            count = await purge(cutoff, self._chunk)
            total += count
            if count < self._chunk:
                return total
            await asyncio.sleep(max(MIN_PAUSE, time.monotonic() - started))

    async def _run(self) -> None:
        while True:
            try:
                deleted = await self.purge_once()
            except StoreError as exc:
                log.warning("retention pass failed, retrying next pass: %s", exc)
            else:
                if any(deleted.values()) or self.quarantine_purged:
                    log.info(
                        "retention purged expired rows",
                        extra={"deleted": deleted, "quarantine": self.quarantine_purged},
                    )
            await asyncio.sleep(self._interval)
