from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from eventwire.runtime.server import Server

BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"


@pytest.fixture
async def http(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{server.http_port}", timeout=30
    ) as client:
        yield client


def status_of(response: httpx.Response, http_status: int, code: int) -> dict[str, Any]:
    """The google.rpc.Status body of an error response, after checking its shape."""
    assert response.status_code == http_status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert set(body) == {"code", "message", "details"}, body
    assert body["code"] == code
    assert isinstance(body["message"], str)
    assert body["message"]
    return body


def violations_of(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (v["field"], v["description"])
        for detail in body["details"]
        if detail["@type"] == BAD_REQUEST
        for v in detail["fieldViolations"]
    ]
