from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
import subprocess
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import psycopg
import pytest

from eventwire.api import analytics_pb2_grpc, telemetry_pb2_grpc
from eventwire.runtime.server import Server
from eventwire.testing import running_server

# -- PostgreSQL ---------------------------------------------------------------------
#
# PostgreSQL runs in a throwaway database (eventwire_test_<random>) created once per
# session on EVENTWIRE_TEST_POSTGRES (default: this machine's server, 127.0.0.1:5432,
# trust auth) and dropped at the end; each test gets a fresh schema in it, so tests
# never see each other's rows or migrations. When PostgreSQL cannot be reached its
# tests are skipped, loudly; with EVENTWIRE_REQUIRE_POSTGRES=1 they fail instead.

ADMIN_URL = os.environ.get("EVENTWIRE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
_unreachable: list[str] = []


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


# Our own retries are the only retries: grpcio's would hide what the server said.
CHANNEL_OPTIONS = (("grpc.enable_retries", 0),)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'events.db'}"


@pytest.fixture
async def server(db_url: str) -> AsyncIterator[Server]:
    async with running_server(store=db_url) as srv:
        yield srv


@pytest.fixture
async def channel(server: Server) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(server.address, options=CHANNEL_OPTIONS) as ch:
        yield ch


@pytest.fixture
def analytics(channel: grpc.aio.Channel) -> analytics_pb2_grpc.AnalyticsServiceAsyncStub:
    return analytics_pb2_grpc.AnalyticsServiceStub(channel)


@pytest.fixture
def telemetry(channel: grpc.aio.Channel) -> telemetry_pb2_grpc.TelemetryServiceAsyncStub:
    return telemetry_pb2_grpc.TelemetryServiceStub(channel)


# -- a real full disk -----------------------------------------------------------------


@contextlib.contextmanager
def tmpfs(mount: Path, options: str) -> Iterator[Path]:
    """A real tmpfs mounted at ``mount`` with ``options``; the test is skipped, loudly,
    where mounting is not allowed."""
    mount.mkdir(exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)],  # noqa: S607
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"SKIPPED LOUDLY: cannot mount a tmpfs ({options}): {done.stderr.decode()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)  # noqa: S607


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MiB filesystem (tmpfs), so that storage really runs out of space."""
    with tmpfs(tmp_path / "disk", "size=2m") as mount:
        yield mount


def fill_disk(ballast: Path) -> None:
    """Fill the filesystem holding ``ballast`` to the last byte."""
    # Unbuffered, so that closing the file has nothing left to write.
    with ballast.open("wb", buffering=0) as f:
        try:
            while f.write(b"\0" * 65536):
                pass
        except OSError:
            pass


def refuse_inserts(db: Path | str, reason: str = "x") -> None:
    """Make every insert into ``events`` fail, as a database refusing a row would."""
    with sqlite3.connect(str(db).removeprefix("sqlite:///")) as conn:
        conn.execute(
            "CREATE TRIGGER boom BEFORE INSERT ON events "
            f"BEGIN SELECT RAISE(ABORT, '{reason}'); END"
        )
