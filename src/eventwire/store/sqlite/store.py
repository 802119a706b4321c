"""The SQLite store: its reads, writes and destinations' bookkeeping over one pair of
connections."""

from __future__ import annotations

from eventwire.store.sqlite.destinations import Destinations
from eventwire.store.sqlite.plans import Plans
from eventwire.store.sqlite.reads import Reads


class SQLiteStore(Reads, Plans, Destinations):
    """The :class:`~eventwire.store.base.Store` on SQLite; see :mod:`eventwire.store.sqlite`."""

    # A cancelled commit's COMMIT still runs to its end on the writer thread,
    # and the next transaction waits for it (see Writes._transaction).
    cancel_safe_commit = True

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r}, synchronous={self.synchronous!r})"
