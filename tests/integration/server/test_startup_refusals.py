"""Bad files and settings stop `eventwire serve` at start: exit != 0, one CRITICAL line."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from eventwire.testing._process import ServerProcess, log_line
from tests.conftest import tmpfs


def serve(*args: str, timeout: float = 30) -> tuple[int, list[dict[str, object]], str]:
    """Run ``eventwire serve`` to its exit; its code, its log lines and its raw stderr."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "eventwire",
            "serve",
            "--address",
            "127.0.0.1:0",
            "--http-address",
            "",
            "--metrics-address",
            "",
            "--log-format",
            "json",
            *args,
        ],
        capture_output=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    lines = [log_line(raw) for raw in done.stderr.splitlines() if raw.strip()]
    return done.returncode, lines, done.stderr.decode(errors="replace")


def refusal(*args: str) -> str:
    """The one CRITICAL message of a server that refused to start."""
    code, lines, raw = serve(*args)
    assert code != 0, raw
    assert "Traceback" not in raw, raw
    critical = [str(line["msg"]) for line in lines if line.get("level") == "critical"]
    assert len(critical) == 1, raw
    return critical[0]


def test_a_database_of_a_newer_schema_version_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "newer.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 99")
    message = refusal("--store", f"sqlite:///{db}")
    assert str(db) in message
    assert "schema version 99" in message
    assert "newer eventwire" in message


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "notes.txt"
    db.write_bytes(b"these are my notes, not a database\n" * 200)
    message = refusal("--store", f"sqlite:///{db}")
    assert str(db) in message
    assert "not an SQLite database" in message
    assert db.read_bytes().startswith(b"these are my notes")  # left as it was


def test_a_directory_where_the_database_should_be_is_refused(tmp_path: Path) -> None:
    message = refusal("--store", f"sqlite:///{tmp_path}")
    assert str(tmp_path) in message
    assert "is a directory" in message


def test_an_empty_token_file_is_refused(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("# nobody yet\n\n")
    message = refusal("--store", f"sqlite:///{tmp_path / 'e.db'}", "--auth-tokens", str(tokens))
    assert str(tokens) in message
    assert "no token" in message
    assert "hash-token" in message


def test_a_missing_tls_file_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "server.pem"
    message = refusal(
        "--store",
        f"sqlite:///{tmp_path / 'e.db'}",
        "--tls-cert",
        str(missing),
        "--tls-key",
        str(missing),
    )
    assert str(missing) in message


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A real read-only filesystem (root ignores permission bits, not a read-only mount)."""
    with tmpfs(tmp_path / "ro", "ro,size=1m") as mount:
        yield mount


def test_a_read_only_directory_is_refused(read_only_dir: Path) -> None:
    message = refusal("--store", f"sqlite:///{read_only_dir / 'e.db'}")
    assert str(read_only_dir) in message
    assert "writable" in message


def test_a_second_server_on_the_same_file_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    with ServerProcess("--store", f"sqlite:///{db}", http_address="") as first:
        message = refusal("--store", f"sqlite:///{db}")
        assert str(db) in message
        assert f"pid {first.pid}" in message
        # A supervisor of workers is refused the same way.
        message = refusal("--store", f"sqlite:///{db}", "--workers", "2")
        assert f"pid {first.pid}" in message
    # Once the first one is gone the file is free again.
    with ServerProcess("--store", f"sqlite:///{db}", http_address="") as second:
        assert second.address


@pytest.mark.postgres
def test_a_postgres_schema_of_a_newer_version_is_refused(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE eventwire_schema (version int PRIMARY KEY, applied_at timestamptz)"
        )
        conn.execute("INSERT INTO eventwire_schema (version) VALUES (1), (99)")
    message = refusal("--store", pg_url)
    assert "schema has version 99" in message
    assert "newer eventwire" in message
