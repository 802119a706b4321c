"""A real server with tokens for two tenants, and Debian's headless chromium."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eventwire.testing._process import ServerProcess
from tests.support.browser import chromium_missing, launch, token_file

ADMIN = "console-admin-" + secrets.token_urlsafe(8)
READER = "console-reader-" + secrets.token_urlsafe(8)
WRITER = "console-writer-" + secrets.token_urlsafe(8)
GLOBEX = "console-globex-" + secrets.token_urlsafe(8)
TOKENS = {
    ADMIN: ("acme", "read,write,admin"),
    READER: ("acme", "read"),
    WRITER: ("acme", "write"),
    GLOBEX: ("globex", "read,write"),
}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Module-scoped, not session: while Playwright's sync API is started it holds
    # an event loop running in this thread, and every async test after it would
    # fail ("cannot be called from a running event loop").
    missing = chromium_missing()
    if missing:
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp: Path = tmp_path_factory.mktemp("console")
    tokens = token_file(tmp / "tokens", TOKENS)
    with ServerProcess(
        "--store", f"sqlite:///{tmp / 'events.db'}", "--auth-tokens", str(tokens)
    ) as process:
        yield process


@pytest.fixture
def base(server: ServerProcess) -> str:
    return f"http://{server.http_address}"
