"""Between memory and the spool: overflow, spills, replay reads, adoption, the last write.

Every write into the spool goes through :class:`Spiller`, and every event it
moves leaves memory's accounting only once its ``append`` has returned (the
record is then in the page cache, where a SIGKILL cannot take it): so memory,
in flight and *spilling* together never exceed ``max_queue_events``, and that
is all a crash of the process can lose.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Final

from eventwire.client._exceptions import SpoolError
from eventwire.client.tracker.aio import offload
from eventwire.client.tracker.epochs import Runs
from eventwire.client.tracker.framing import Batch, event_id_of
from eventwire.client.tracker.report import Reporter
from eventwire.client.tracker.spool import Spool
from eventwire.client.tracker.state import Pipeline
from eventwire.client.tracker.stats import DropReason

__all__ = ["Spiller"]

log = logging.getLogger("eventwire.client")

_SPILL_CHUNK_BYTES: Final = 1 << 20


class Spiller:
    """The tracker's use of its :class:`Spool` (None: memory only); thread-safe."""

    def __init__(
        self,
        spool: Spool | None,
        core: Pipeline,
        reporter: Reporter,
        sync_soon: Callable[[], None],
    ) -> None:
        self.spool = spool
        self._core = core
        self._reporter = reporter
        self._sync_soon = sync_soon
        self._final: tuple[int, int] | None = None

    def sizes(self) -> tuple[int, int]:
        """Events and bytes in the spool (as they were at close, once closed)."""
        if self._final is not None:
            return self._final
        if self.spool is None:
            return 0, 0
        return self.spool.events, self.spool.nbytes

    @property
    def lane(self) -> Path | None:
        return self.spool.lane if self.spool is not None else None

    # -- track()'s thread --------------------------------------------------------------

    def overflow(self, event_id: str, item: bytes, epoch: int) -> None:
        """Memory is full: the event goes straight to the spool, or is dropped by policy."""
        spool = self.spool
        if spool is None:
            self._refuse(event_id, epoch, DropReason.MEMORY_FULL)
            return
        try:
            spool.append([item], [(epoch, 1)])
        except SpoolError as exc:
            self._reporter.spool_failed(exc)
            self._refuse(event_id, epoch, self._reporter.spool_drop_reason)
            return
        self._reporter.spool_ok()
        self._core.overflowed()
        self._sync_soon()

    def _refuse(self, event_id: str, epoch: int, reason: str) -> None:
        self._core.refused(epoch, reason)
        self._reporter.drop(event_id, reason)

    # -- the loop (async) and its worker threads ---------------------------------------

    async def spill(self, *, include_unacked: bool) -> None:
        """Move what memory holds to the spool, oldest first; keep in memory what fails."""
        if self.spool is None:
            self._core.spill_requested = False
            return
        events, runs = self._core.take_for_spill(include_unacked=include_unacked)
        if events:
            await offload(self.write, events, runs)

    def write(self, events: list[bytes], runs: list[tuple[int, int]]) -> int:
        """Append spilling ``events`` in chunks, then fsync; what fails goes back to memory.

        Each chunk leaves memory's accounting as soon as its append returns.
        """
        spool = self.spool
        labels = Runs(runs)
        written = 0
        try:
            if spool is None:
                return 0
            while written < len(events):
                size = 0
                end = written
                while end < len(events) and (end == written or size < _SPILL_CHUNK_BYTES):
                    size += len(events[end])
                    end += 1
                chunk_runs = labels.take(end - written)
                try:
                    spool.append(events[written:end], chunk_runs)
                except SpoolError:
                    labels.extendleft(chunk_runs)
                    raise
                self._core.spilled(end - written, size)
                written = end
            spool.sync()
            self._reporter.spool_ok()
        except SpoolError as exc:
            self._reporter.spool_failed(exc)
        finally:
            self._core.put_back(events[written:], labels.items())
        return written

    def read_batch(self, max_events: int, max_bytes: int) -> tuple[Batch | None, bool]:
        """The next batch from the spool, registered as unacked; and whether to read on."""
        spool = self.spool
        if spool is None:
            return None, False
        try:
            read = spool.read(max_events, max_bytes)
        except SpoolError as exc:
            self._reporter.spool_failed(exc)
            return None, False
        if read is None:
            return None, False
        if read.lost:
            lost = sum(n for _, n in read.lost)
            self._core.drop_settled(read.lost, lost, DropReason.SPOOL_DAMAGED)
            for _ in range(lost):
                self._reporter.drop("", DropReason.SPOOL_DAMAGED)
        if not read.events:
            return None, True
        return self._core.add_spool_batch(read.events, read.runs, read.segment), True

    def acked(self, batch: Batch) -> None:
        if batch.source is not None and self.spool is not None:
            self.spool.ack(batch.source, len(batch.events))

    def adopt(self) -> int:
        """Take over the lanes of dead processes; returns the events found."""
        spool = self.spool
        if spool is None:
            return 0
        try:
            found = spool.adopt()
        except SpoolError as exc:
            self._reporter.spool_failed(exc)
            return 0
        if found:
            self._core.recovered(found)
            log.info("eventwire tracker: replaying %d spooled events", found)
        return found

    def sync_quietly(self) -> None:
        if self.spool is not None:
            try:
                self.spool.sync()
            except SpoolError as exc:
                self._reporter.spool_failed(exc)

    # -- stopping ----------------------------------------------------------------------

    def keep_leftovers(self) -> None:
        """After the background task stopped: memory goes to the spool, or is dropped."""
        spool = self.spool
        if spool is not None:
            self.write(*self._core.take_for_spill(include_unacked=True))
            self._final = (spool.events, spool.nbytes)
            spool.close()
        reason = DropReason.CLOSE_TIMEOUT if spool is None else self._reporter.spool_drop_reason
        for item in self._core.drop_memory(reason):
            self._reporter.drop(event_id_of(item), reason)

    def close(self) -> None:
        """Make what was written durable and release the lane (a spool-only child's close)."""
        self.sync_quietly()
        if self.spool is not None:
            self.spool.close()
