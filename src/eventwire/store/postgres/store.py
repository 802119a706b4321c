"""The PostgreSQL store: its reads, writes and listener over one pool."""

from __future__ import annotations

from eventwire.store.postgres.destinations import Destinations
from eventwire.store.postgres.listen import Listen
from eventwire.store.postgres.plans import Plans
from eventwire.store.postgres.reads import Reads


class PostgresStore(Reads, Plans, Listen, Destinations):
    """The :class:`~eventwire.store.base.Store` on PostgreSQL (see the package docstring)."""

    # A commit cancelled mid-flight leaves its pooled connection to the driver's
    # cancellation; the pipeline keeps PostgreSQL commits in its own writer task.
    cancel_safe_commit = False

    def __repr__(self) -> str:
        return f"PostgresStore({self._redact(self._url)!r}, write_method={self.write_method!r})"
