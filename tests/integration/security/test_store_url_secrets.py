"""A password in the store URL, in either form, never leaves ``eventwire serve``:
not on stdout, not on stderr, not on ``/metrics``, whether the store is reached or not."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from typing import IO

import grpc
import orjson
import psycopg
import pytest

from eventwire.api import analytics_pb2, analytics_pb2_grpc
from tests.support.security import SENTINEL


def with_password(url: str, how: str) -> str:
    """``url`` carrying the sentinel as its password, in userinfo or as ``?password=``."""
    parts = urllib.parse.urlsplit(url)
    if how == "userinfo":
        host = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
        parts = parts._replace(netloc=f"{parts.username or 'postgres'}:{SENTINEL}@{host}")
    else:
        parts = parts._replace(query="&".join(filter(None, [parts.query, f"password={SENTINEL}"])))
    rewritten = urllib.parse.urlunsplit(parts)
    # The rewrite took: libpq would send the sentinel as the password.
    assert psycopg.conninfo.conninfo_to_dict(rewritten)["password"] == SENTINEL
    return rewritten


class Served:
    """``eventwire serve`` with both of its output streams collected."""

    def __init__(self, store: str) -> None:
        argv = [sys.executable, "-m", "eventwire", "serve", "--store", store]
        argv += ["--address", "127.0.0.1:0", "--http-address", "127.0.0.1:0"]
        # One process, no supervisor: the exit code is the server's own.
        argv += ["--metrics-address", "127.0.0.1:0", "--log-format", "json", "--workers", "1"]
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.out: list[bytes] = []
        self.err: list[bytes] = []
        self.serving: dict[str, object] = {}
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: IO[bytes] | None, into: list[bytes]) -> None:
        assert stream is not None
        for raw in stream:
            into.append(raw)
            if into is self.err and b'"serving"' in raw:
                self.serving = orjson.loads(raw)

    def wait_serving(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.serving:
            assert self.proc.poll() is None, b"".join(self.err).decode(errors="replace")
            assert time.monotonic() < deadline, "never served"
            time.sleep(0.05)

    def stop(self, *, signalled: bool = True) -> int:
        if signalled and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(60)
        for reader in self._readers:
            reader.join(10)
        return code

    def text(self) -> str:
        return b"".join(self.out + self.err).decode(errors="replace")


@pytest.mark.parametrize("how", ["userinfo", "query"])
async def test_a_store_password_never_reaches_logs_or_metrics(pg_database: str, how: str) -> None:
    served = Served(with_password(pg_database, how))
    try:
        await asyncio.to_thread(served.wait_serving)
        async with grpc.aio.insecure_channel(str(served.serving["grpc_address"])) as ch:
            stub = analytics_pb2_grpc.AnalyticsServiceStub(ch)
            reply = await stub.TrackEvent(analytics_pb2.TrackEventRequest(event_name="e"))
            assert reply.success  # the password-carrying URL is the one in use
        url = f"http://{served.serving['metrics_address']}/metrics"
        with await asyncio.to_thread(urllib.request.urlopen, url, timeout=10) as scraped:
            metrics = scraped.read().decode()
        assert "eventwire_store_up" in metrics
    finally:
        code = await asyncio.to_thread(served.stop)
    assert code == 0
    # The serving line names the store, its password masked.
    assert "***" in str(served.serving["store"])
    assert SENTINEL not in served.text()
    assert SENTINEL not in metrics


@pytest.mark.parametrize("how", ["userinfo", "query"])
async def test_a_store_password_never_reaches_the_output_of_a_failed_start(how: str) -> None:
    # Port 1 on loopback: refused at once, so the start fails with the driver's error.
    store = with_password("postgresql://postgres@127.0.0.1:1/x?connect_timeout=2", how)
    served = Served(store)
    code = await asyncio.to_thread(lambda: served.stop(signalled=False))
    assert code != 0
    assert "127.0.0.1" in served.text()  # the failure is reported, the URL with it
    assert SENTINEL not in served.text()


@pytest.mark.parametrize("scheme", ["postgresq", "mysql"])
async def test_a_store_password_never_reaches_the_refusal_of_an_unknown_scheme(
    scheme: str,
) -> None:
    served = Served(f"{scheme}://app:{SENTINEL}@127.0.0.1/x?password={SENTINEL}")
    code = await asyncio.to_thread(lambda: served.stop(signalled=False))
    assert code == 2
    assert scheme in served.text()  # the refusal says what was wrong
    assert SENTINEL not in served.text()
