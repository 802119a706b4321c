"""Every store test runs on SQLite and on PostgreSQL (COPY and INSERT)."""

from tests.support.store import kind, make_store, store, store_url  # noqa: F401 - fixtures
