"""PostgreSQL store: many stateless replicas over one shared database.

In modules: :mod:`.connection` (pool, migrations, timeouts, errors),
:mod:`.writes`, :mod:`.reads`, :mod:`.listen` (LISTEN/NOTIFY), and
:mod:`.store`, which puts them together.

Writes arrive as whole group commits from the ingest pipeline and go to the
server as one statement per kind (not one per row), in one transaction:

* ``copy``: the unique rows are COPYed in binary into a per-connection
  temporary staging table, then moved with ``INSERT ... SELECT ... ON CONFLICT
  DO NOTHING``. 2-2.6x as fast as ``insert`` from ~100 rows on (78k-113k vs
  35k-43k rows/s at 1,000-10,000 rows per commit on the 2-core reference
  machine, with 6-10x less client CPU; see ``bench/store_throughput.py`` and
  docs/scaling.md), but two round trips more.
* ``insert``: one ``INSERT ... SELECT FROM unnest(<one array per column>) ...
  ON CONFLICT DO NOTHING``, the arrays sent as parameters; the faster one for
  small batches (0.9-1.0 vs 1.3-1.4 ms for a single row).
* ``auto`` (default): ``insert`` below :data:`COPY_THRESHOLD` rows, where the
  two cross over, else ``copy``.

Either way the statement returns, per request (group), how many of its rows were
new, and the unique constraint ``(tenant, event_id)`` makes dedupe hold across
replicas: a concurrent insert of the same key waits for the other transaction
and is then skipped. Rows are inserted in key order, so two replicas committing
overlapping keys take their row locks in the same order and cannot deadlock
(a deadlock or serialization failure is retried anyway).

Reads in commit order (watching alerts, exporting events) cannot go by ``seq``:
a sequence value is taken when a row is inserted, not when its transaction
commits, so with several writers a row with a lower ``seq`` can become visible
after a higher one was already read, and a reader resuming after that higher
one would never see it. Every row therefore records the transaction that wrote
it (``xid``, an xid8, which never wraps), and a position is ``(xid, seq)``. A
read delivers only rows whose transaction is older than the oldest one still
running (the snapshot's ``xmin``): those are all finished, and every
transaction that commits later has an xid at least that large, so it lands
after everything already delivered. Readers learn of new rows by LISTEN/NOTIFY
(each commit notifies ``eventwire_alerts`` / ``eventwire_events``), from any
replica. The price: while any transaction of the cluster is open, rows of
younger ones wait for it; eventwire's own are bounded by ``command_timeout``.

Nothing may hang an RPC: every operation (pool wait, connect, query) is bounded
by ``command_timeout``. The server gets it as ``statement_timeout`` and cancels
slow statements itself, cleanly; if it does not answer even that (half a second
later: a silent network), the store raises :class:`StoreUnavailable` at once
and leaves the stuck connection to be cancelled and discarded in the
background, because psycopg's own cancellation waits on the very network that
just stopped answering. ``idle_in_transaction_session_timeout`` makes sure a
replica that died mid-transaction cannot hold row locks that block the others.

Tuning lives in the URL: libpq's own parameters (``connect_timeout``,
``keepalives_idle``, ``options``, ``sslmode``...) pass through, and eventwire
reads and removes ``command_timeout`` (seconds, default 5), ``pool_min_size``
(1), ``pool_max_size`` (8) and ``write_method`` (``auto``). Behind PgBouncer in
transaction mode use ``write_method=insert`` (the COPY staging table lives in
the session), add ``options`` to its ``ignore_startup_parameters`` and set the
server-side timeouts on the role instead.
"""

from eventwire.store.postgres.connection import (
    _MIGRATION_LOCK,
    COPY_THRESHOLD,
    DEFAULT_COMMAND_TIMEOUT,
    WRITE_METHODS,
    WriteMethod,
)
from eventwire.store.postgres.reads import alert_page_query, event_page_query
from eventwire.store.postgres.store import PostgresStore

__all__ = [
    "COPY_THRESHOLD",
    "DEFAULT_COMMAND_TIMEOUT",
    "WRITE_METHODS",
    "_MIGRATION_LOCK",
    "PostgresStore",
    "WriteMethod",
    "alert_page_query",
    "event_page_query",
]
