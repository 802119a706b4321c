"""The Destinations page in a real chromium against a real webhook destination: state,
counts and dead letters shown; pause, resume and discard for an admin token, confirmed
first and logged with who did them; no such control, and a 403, for a read-only token."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from eventwire.security.auth import hash_token
from eventwire.testing._process import ServerProcess
from tests.browser.conftest import ADMIN, READER, TOKENS
from tests.support.browser import (
    TOKEN_KEY,
    bearer,
    console_page,
    serious_violations,
    token_file,
    webhook_destination,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp: Path = tmp_path_factory.mktemp("destinations")
    with (
        webhook_destination("hook") as destination,
        ServerProcess(
            "--store",
            f"sqlite:///{tmp / 'events.db'}",
            "--auth-tokens",
            str(token_file(tmp / "tokens", TOKENS)),
            "--destination",
            destination,
        ) as process,
    ):
        yield process


def test_an_admin_sees_a_destination_and_pauses_resumes_and_discards_with_a_record(
    browser: Any, base: str, server: ServerProcess
) -> None:
    with console_page(browser, base, ADMIN) as page, httpx.Client(base_url=base) as http:
        # One event, so one batch: refused, so one dead letter.
        reply = http.post("/v1/events", json={"eventName": "poison"}, headers=bearer(ADMIN))
        assert reply.status_code == 200, reply.text
        page.goto(base + "/console/#/destinations")
        row = page.locator("#dest-table tr[data-name=hook]")
        expect(row).to_contain_text("http://127.0.0.1")
        dead = row.locator("a[href='#/destinations/hook']")
        expect(dead).to_have_text("1", timeout=15000)  # the page polls every 5 s

        # Cancelled: nothing changes.
        row.get_by_role("button", name="Pause").click()
        expect(page.locator("#confirm-text")).to_contain_text("Pause hook?")
        page.click("#confirm-cancel")
        expect(row.get_by_role("button", name="Pause")).to_be_visible()
        # Confirmed: paused, then resumed.
        row.get_by_role("button", name="Pause").click()
        page.click("#confirm-ok")
        expect(page.locator("#dest-report")).to_have_text("Pause: done for hook.")
        expect(row.locator("td").nth(0)).to_have_text("paused")
        row.get_by_role("button", name="Resume").click()
        page.click("#confirm-ok")
        expect(row.get_by_role("button", name="Pause")).to_be_visible()

        assert not serious_violations(page)
        dead.click()
        expect(page.locator("#dl-table tbody tr")).to_have_count(1)
        assert not serious_violations(page)
        page.get_by_role("button", name="Discard all").click()
        expect(page.locator("#confirm-text")).to_contain_text("cannot be delivered afterwards")
        page.click("#confirm-ok")
        expect(page.locator("#dl-report")).to_have_text("Discard all: 1 dead letter(s).")
        expect(page.locator("#dl-list")).to_contain_text("No dead letters.")
    audit = [line for line in server.logs if line.get("logger") == "eventwire.audit"]
    assert [(a["operation"], a["status"]) for a in audit] == [
        ("DestinationsService.PauseDestination", 200),
        ("DestinationsService.ResumeDestination", 200),
        ("DestinationsService.DiscardDeadLetters", 200),
    ]
    assert {(a["tenant"], a["token_id"]) for a in audit} == {("acme", hash_token(ADMIN)[:12])}


def test_a_read_only_token_sees_destinations_without_controls_and_gets_403(
    browser: Any, base: str
) -> None:
    with console_page(browser, base, READER) as page:
        page.goto(base + "/console/#/destinations")
        expect(page.locator("#dest-table tr[data-name=hook]")).to_be_visible()
        assert page.locator("[data-mutates]").count() == 0
        page.goto(base + "/console/#/destinations/hook")
        expect(page.locator("#dl-list")).not_to_contain_text("Loading")
        assert page.locator("[data-mutates]").count() == 0
        for path in ("pause", "resume", "replay", "discardDeadLetters"):
            status = page.evaluate(
                """async ([path, key]) => (await fetch("/v1/destinations:" + path, {
                    method: "POST", body: JSON.stringify({name: "hook", all: true}),
                    headers: {authorization: "Bearer " + sessionStorage.getItem(key),
                              "content-type": "application/json"}})).status""",
                [path, TOKEN_KEY],
            )
            assert status == 403, path
