"""Stores under test: SQLite in a temporary file and the real PostgreSQL.

PostgreSQL runs in a throwaway database (``eventwire_test_<random>``) created
once per session on ``EVENTWIRE_TEST_POSTGRES`` (default: this machine's
server, 127.0.0.1:5432, trust auth) and dropped at the end; each test gets a
fresh schema in it, so tests never see each other's rows or migrations. When
PostgreSQL cannot be reached its tests are skipped, loudly; with
``EVENTWIRE_REQUIRE_POSTGRES=1`` (CI) they fail instead.
"""

from __future__ import annotations

import os
import secrets
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from eventwire.store import Store, open_store
from eventwire.store.postgres import PostgresStore, WriteMethod

ADMIN_URL = os.environ.get("EVENTWIRE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
_unreachable: list[str] = []

StoreFactory = Callable[[], Store]


def with_database(url: str, database: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + database))


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """URL of a throwaway PostgreSQL database for this test session."""
    name = f"eventwire_test_{secrets.token_hex(4)}"
    try:
        with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f"CREATE DATABASE {name}")
    except psycopg.Error as exc:
        reason = (
            f"!!! PostgreSQL NOT REACHABLE at {ADMIN_URL} ({' '.join(str(exc).split())}): "
            "the PostgreSQL store tests DID NOT RUN. Start it (.ci/run does) or set "
            "EVENTWIRE_TEST_POSTGRES. !!!"
        )
        if os.environ.get("EVENTWIRE_REQUIRE_POSTGRES"):
            pytest.fail(reason)
        _unreachable.append(reason)
        pytest.skip(reason)
    try:
        yield with_database(ADMIN_URL, name)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _unreachable:
        terminalreporter.section("PostgreSQL tests skipped", sep="!", red=True, bold=True)
        terminalreporter.write_line(_unreachable[0], red=True, bold=True)


@pytest.fixture
def pg_url(pg_database: str) -> Iterator[str]:
    """A URL whose tables live in a fresh, empty schema of the session database."""
    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield f"{pg_database}?options=-csearch_path%3D{schema}"
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def pg_rows(url: str, query: str) -> list[tuple[object, ...]]:
    """Rows of ``query`` run directly on the database (and schema) of ``url``."""
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(query.encode()).fetchall()


@pytest.fixture(params=["sqlite", "postgres-copy", "postgres-insert"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'events.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def make_store(kind: str, store_url: str) -> StoreFactory:
    """New, unopened store instances on the same storage (think: replicas)."""
    if kind == "sqlite":
        return lambda: open_store(store_url)
    method: WriteMethod = "copy" if kind == "postgres-copy" else "insert"
    return lambda: PostgresStore(store_url, write_method=method)


@pytest.fixture
async def store(make_store: StoreFactory) -> AsyncIterator[Store]:
    s = make_store()
    await s.open()
    try:
        yield s
    finally:
        await s.close()
