"""SQLite store: embedded, nothing to start, durable.

In modules: :mod:`.files` (the lock, the files' identity and attributes),
:mod:`.connection` (connections, threads, faults), :mod:`.writes`, :mod:`.reads`,
and :mod:`.store`, which puts them together.

One writer connection, fed whole group commits by the ingest pipeline, one
transaction at a time. Its rows go in on the event loop: inserting a group
costs microseconds, less than handing it to a thread and back (two GIL
hand-offs and a loop wake-up, which on one core were most of a small commit's
cost). Only what waits on the disk leaves the loop: a ``COMMIT`` that fsyncs
(``synchronous = full`` or ``extra``) runs on the writer thread, so the loop
keeps serving while the disk works; with ``normal`` or ``off`` the ``COMMIT``
writes to the WAL without an fsync and stays on the loop too. A transaction
that would wait for the write lock (``--workers`` processes share the file),
and retention's bulk deletes, run wholly on the writer thread. Reads use a
second connection on another thread; WAL lets them run while a write is in
progress.

Reads in commit order need nothing special here: the one writer commits one
transaction after another, so rowid order is commit order and a row a reader
can see is final. Positions are ``(0, rowid)``.

Durability is the ``synchronous`` pragma, a documented trade-off:

* ``full`` (default): a commit survives power loss and OS crashes; one fsync of
  the WAL per commit, shared by every request in a group commit.
* ``normal``: a commit survives a crash of the process, but the last commits may
  roll back on power loss or an OS crash (WAL is fsynced only at checkpoints).
* ``off``: for benchmarks and throwaway data only.

One server per file: :meth:`SQLiteStore.open` takes an exclusive ``flock`` on
``<file>.lock`` (holding the owner's pid) for the store's life, so a second
server on the same file is refused at start instead of writing beside the
first. ``--workers`` processes share a file on purpose: their supervisor holds
the lock (:class:`DatabaseLock`) and each worker opens with ``exclusive=False``.

Faults while serving. Acknowledged rows live in three files: the database,
its ``-wal`` (every commit since the last checkpoint) and its ``-shm`` (the WAL
index). A file deleted or replaced under the server keeps being written
through the descriptor SQLite holds, and a restart reads the path, not that
descriptor: rows committed then are lost. So after each commit, before it is
acknowledged, the path of each file is ``stat``-ed against the identity the
file had when opened (:class:`StorageFiles`; a descriptor of our own keeps
each inode from being reused meanwhile), and the ``-wal``'s size against the
most it has been (SQLite only ever rewrites it from the start, never shrinks
it: ``journal_size_limit`` is pinned to -1), once more before the commit, so a
truncated WAL is refused before anything is written after the hole. On such
a fault the store saves what it can (a full checkpoint of the WAL it still
holds into the database file; a database file deleted is written back to its
path from the open connection, page for page), acknowledges the commit only
if that worked, and refuses every later write with :class:`StoreGone`.
Before each commit the ``-shm`` file's attributes are read
(``FS_IOC_GETFLAGS``): SQLite keeps the WAL index in that file memory-mapped,
and writing to a mapped page of an immutable file (``chattr +i``) is a SIGBUS
that kills the process, so an immutable file is refused as unavailable before
SQLite touches it, and served again once the attribute is cleared. Five
metadata syscalls per group commit (a few microseconds, against a commit's
fsync of milliseconds), none per request. ``mmap_size`` stays 0 (SQLite's
default, pinned here against builds that change it): memory-mapped reads would
turn every I/O error on the database file into a SIGBUS too, and measured they
buy nothing for this workload (see docs/limits.md).
"""

from eventwire.store.sqlite.connection import SYNCHRONOUS_LEVELS
from eventwire.store.sqlite.files import DatabaseLock, StorageFiles
from eventwire.store.sqlite.store import SQLiteStore

__all__ = ["SYNCHRONOUS_LEVELS", "DatabaseLock", "SQLiteStore", "StorageFiles"]
