"""Read RPCs run against a server on SQLite and one on PostgreSQL."""

from tests.support.reads import read_server, read_store, stubs  # noqa: F401 - fixtures
