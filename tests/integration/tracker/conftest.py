"""Tracker fixtures: the server's SQLite file, read back directly."""

from tests.support.tracker import db, db_url  # noqa: F401 - fixtures
