"""The gateway's readiness on a really full disk: 503, then 200 once space is back."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from eventwire.testing import running_server
from tests.conftest import fill_disk


async def _wait_ready_status(http: httpx.AsyncClient, status: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while (current := (await http.get("/readyz")).status_code) != status:
        if time.monotonic() > deadline:
            pytest.fail(f"/readyz stayed {current}, expected {status}")
        await asyncio.sleep(0.05)


async def test_readyz_is_503_while_storage_is_down_and_recovers(small_disk: Path) -> None:
    ballast = small_disk / "ballast"
    async with (
        running_server(store=f"sqlite:///{small_disk / 'e.db'}", store_probe_interval=0.05) as srv,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{srv.http_port}", timeout=30) as http,
    ):
        assert (await http.post("/v1/events", json={"eventName": "before"})).status_code == 200
        fill_disk(ballast)
        big = {f"k{i}": "v" * 4000 for i in range(7)}
        refused = None
        for _ in range(1000):  # bounded: the disk is full long before this
            r = await http.post("/v1/events", json={"eventName": "filling", "properties": big})
            if r.status_code != 200:
                refused = r
                break
        assert refused is not None
        assert (refused.status_code, refused.json()["code"]) == (503, 14)
        await _wait_ready_status(http, 503)
        assert (await http.get("/readyz")).json() == {"status": "NOT_SERVING"}
        # Liveness is not readiness: the process is fine, only storage is not.
        assert (await http.get("/healthz")).status_code == 200

        ballast.unlink()
        await _wait_ready_status(http, 200)
        assert (await http.post("/v1/events", json={"eventName": "after"})).status_code == 200
