"""Shared fixtures of the security suite: throwaway PKI, token files, leak checks.

Every token used here starts with :data:`SENTINEL`. A session fixture collects
every log record the suite's servers write (in process and in child
processes), every span they export and every error message clients got, and
fails the session if the sentinel shows up in any of them.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
import trustme
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from eventwire.observability.logs import JsonFormatter
from eventwire.observability.tracing import tracer_provider
from eventwire.runtime.server import Server
from eventwire.security.auth import hash_token
from eventwire.testing import running_server
from eventwire.testing._process import ServerProcess

SENTINEL = "EWSENTINEL" + secrets.token_hex(6)


def token(name: str) -> str:
    return f"{SENTINEL}-{name}-{secrets.token_urlsafe(8)}"


ACME = token("acme")
ACME_WRITER = token("acme-writer")
ACME_READER = token("acme-reader")
GLOBEX = token("globex")
UNKNOWN = token("unknown")
TOKENS = {ACME: ("acme", "write,read"), ACME_WRITER: ("acme", "write")}
TOKENS |= {ACME_READER: ("acme", "read"), GLOBEX: ("globex", "read,write")}


def bearer(tok: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {tok}"),)


def token_file_text(tokens: dict[str, tuple[str, str]]) -> str:
    lines = ["# written by tests/security/conftest.py"]
    lines += [f"{hash_token(t)}  {tenant}  {scopes}" for t, (tenant, scopes) in tokens.items()]
    return "\n".join(lines) + "\n"


@dataclasses.dataclass
class Leaks:
    texts: list[str] = dataclasses.field(default_factory=list)
    processes: list[ServerProcess] = dataclasses.field(default_factory=list)
    spans: int = 0

    def add(self, *texts: object) -> None:
        self.texts.extend(str(t) for t in texts)


class _Capture(logging.Handler):
    def __init__(self, leaks: Leaks) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self._leaks = leaks

    def emit(self, record: logging.LogRecord) -> None:
        self._leaks.texts.append(self.format(record))


@pytest.fixture(scope="session", autouse=True)
def leaks() -> Iterator[Leaks]:
    found = Leaks()
    handler = _Capture(found)
    loggers = [logging.getLogger(name) for name in ("eventwire", "uvicorn", "grpc", "")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
    logging.getLogger("eventwire").setLevel(logging.DEBUG)
    try:
        yield found
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)
    for proc in found.processes:
        found.texts.extend(orjson.dumps(line).decode() for line in proc.logs)
    leaked = [text for text in found.texts if SENTINEL in text]
    assert not leaked, f"a token leaked into logs, spans or errors: {leaked[:3]}"


@dataclasses.dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_ca: Path
    client_cert: Path
    client_key: Path
    rogue_cert: Path
    """A client certificate signed by a CA the server does not trust."""
    rogue_key: Path
    rogue_ca: Path


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    server_ca, client_ca, rogue_ca = trustme.CA(), trustme.CA(), trustme.CA()
    server = server_ca.issue_cert("127.0.0.1", "localhost")
    client = client_ca.issue_cert("device-1.example")
    rogue = rogue_ca.issue_cert("device-1.example")

    def write(name: str, *blobs: trustme.Blob) -> Path:
        path = root / name
        path.write_bytes(b"".join(blob.bytes() for blob in blobs))
        return path

    return Pki(
        ca=write("ca.pem", server_ca.cert_pem),
        server_cert=write("server.pem", *server.cert_chain_pems),
        server_key=write("server.key", server.private_key_pem),
        client_ca=write("client-ca.pem", client_ca.cert_pem),
        client_cert=write("client.pem", client.cert_chain_pems[0]),
        client_key=write("client.key", client.private_key_pem),
        rogue_cert=write("rogue.pem", rogue.cert_chain_pems[0]),
        rogue_key=write("rogue.key", rogue.private_key_pem),
        rogue_ca=write("rogue-ca.pem", rogue_ca.cert_pem),
    )


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens"
    path.write_text(token_file_text(TOKENS))
    return path


@asynccontextmanager
async def traced_server(leaks: Leaks, **overrides: Any) -> AsyncIterator[Server]:
    """running_server with an in-memory span exporter whose spans join the leak check."""
    exporter = InMemorySpanExporter()
    provider = tracer_provider("none", processor=SimpleSpanProcessor(exporter))
    try:
        async with running_server(traces=provider, **overrides) as srv:
            yield srv
    finally:
        spans = exporter.get_finished_spans()
        leaks.spans += len(spans)
        leaks.add(*(span.to_json() for span in spans))


@pytest.fixture
async def secured(leaks: Leaks, token_file: Path, tmp_path: Path) -> AsyncIterator[Server]:
    async with traced_server(
        leaks, auth_tokens=str(token_file), store=f"sqlite:///{tmp_path / 'events.db'}"
    ) as srv:
        yield srv


def rows(store_url: str) -> int:
    """Every event and alert row in a SQLite store, whatever its tenant."""
    path = store_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        alerts = conn.execute("SELECT count(*) FROM alerts").fetchone()[0]
    return int(events) + int(alerts)


def spawn(leaks: Leaks, *args: str, **kwargs: Any) -> ServerProcess:
    """A ServerProcess whose logs join the leak check."""
    proc = ServerProcess(*args, **kwargs)
    leaks.processes.append(proc)
    return proc
