"""Flush epochs: which events a ``flush()`` waits for, counted without touching the events.

Each ``flush()`` call ends an epoch (:meth:`Epochs.new`). Every event carries
the epoch it was tracked in, as :class:`Runs` (run-length encoded labels that
travel alongside events wherever they go: memory, a batch, the spool), and a
flush is done once no event of its epoch or an earlier one is outstanding.
Events recovered from a spool belong to epoch 0, so every flush waits for them too.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence

__all__ = ["Epochs", "Runs"]


class Epochs:
    """Outstanding events per epoch. Not locked: its owner's lock guards it."""

    __slots__ = ("current", "outstanding")

    def __init__(self) -> None:
        self.current = 1
        self.outstanding: dict[int, int] = {}

    def add(self, n: int = 1, epoch: int | None = None) -> int:
        """Count ``n`` new outstanding events of ``epoch`` (default: the current one)."""
        epoch = self.current if epoch is None else epoch
        self.outstanding[epoch] = self.outstanding.get(epoch, 0) + n
        return epoch

    def settle(self, runs: Iterable[tuple[int, int]]) -> None:
        outstanding = self.outstanding
        for epoch, n in runs:
            left = outstanding.get(epoch, 0) - n
            if left > 0:
                outstanding[epoch] = left
            else:
                outstanding.pop(epoch, None)

    def new(self) -> int:
        """Start a new epoch; returns the one that just ended (what a flush waits for)."""
        self.current += 1
        return self.current - 1

    def settled_through(self, epoch: int) -> bool:
        return all(e > epoch for e in self.outstanding)

    def total(self) -> int:
        return sum(self.outstanding.values())


class Runs:
    """Epoch labels of a FIFO of events, run-length encoded: ``[(epoch, count), ...]``."""

    __slots__ = ("_runs", "count")

    def __init__(self, runs: Iterable[tuple[int, int]] = ()) -> None:
        self._runs: deque[list[int]] = deque()
        self.count = 0
        self.extend(runs)

    def push(self, epoch: int, n: int = 1) -> None:
        if n <= 0:
            return
        if self._runs and self._runs[-1][0] == epoch:
            self._runs[-1][1] += n
        else:
            self._runs.append([epoch, n])
        self.count += n

    def extend(self, runs: Iterable[tuple[int, int]]) -> None:
        for epoch, n in runs:
            self.push(epoch, n)

    def extendleft(self, runs: Sequence[tuple[int, int]]) -> None:
        for epoch, n in reversed(runs):
            if n <= 0:
                continue
            if self._runs and self._runs[0][0] == epoch:
                self._runs[0][1] += n
            else:
                self._runs.appendleft([epoch, n])
            self.count += n

    def take(self, n: int) -> list[tuple[int, int]]:
        """Remove the labels of the first ``n`` events and return them."""
        if n > self.count:
            raise ValueError(f"cannot take {n} of {self.count} labels")
        taken: list[tuple[int, int]] = []
        while n:
            run = self._runs[0]
            k = min(n, run[1])
            taken.append((run[0], k))
            run[1] -= k
            n -= k
            if not run[1]:
                self._runs.popleft()
        self.count -= sum(k for _, k in taken)
        return taken

    def first_epoch(self) -> int | None:
        return self._runs[0][0] if self._runs else None

    def items(self) -> list[tuple[int, int]]:
        return [(e, n) for e, n in self._runs]

    def clear(self) -> None:
        self._runs.clear()
        self.count = 0
