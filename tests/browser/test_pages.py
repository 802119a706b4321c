"""The console's pages in a real chromium: volumes that match CountEvents, tenants kept
apart, read-only tokens, the CSP and token handling, keyboard use, and axe-core's audit."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from eventwire._rpc import ADMIN as ADMIN_SCOPE
from eventwire._rpc import OPERATIONS, WRITE
from eventwire.testing._process import ServerProcess
from tests.browser.conftest import ADMIN, GLOBEX, READER, WRITER
from tests.support.browser import TOKEN_KEY, bearer, console_page, seed, serious_violations

PAGES = ("live", "volumes/day", "alerts", "plans", "destinations", "server")
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


@pytest.fixture(scope="module")
def seeded(server: ServerProcess) -> str:
    """acme's sample data (a day of events, a few alerts); the first alert's tracking id."""
    base = f"http://{server.http_address}"
    seed(base, ADMIN)
    reply = httpx.get(base + "/v1/alerts", headers=bearer(ADMIN), params={"page_size": 1})
    tracking_id: str = reply.json()["alerts"][0]["trackingId"]
    return tracking_id


def test_volumes_match_count_events(browser: Any, base: str, seeded: str) -> None:
    with (
        console_page(browser, base, ADMIN, locale="en-US") as page,
        httpx.Client(base_url=base, headers=bearer(ADMIN)) as http,
    ):
        page.goto(base + "/console/#/volumes/day")
        volumes = page.locator("#volumes[aria-busy=false]")
        expect(volumes).to_be_visible()
        start, end = volumes.get_attribute("data-start"), volumes.get_attribute("data-end")
        rows = page.locator("#names tbody tr")
        assert rows.count() == 6
        for i in range(rows.count()):
            name, shown = (
                rows.nth(i).get_attribute("data-name"),
                rows.nth(i).get_attribute("data-count"),
            )
            params = {"event_name": name, "start": start, "end": end}
            assert shown == http.get("/v1/events:count", params=params).json()["count"], name
        total = http.get("/v1/events:count", params={"start": start, "end": end}).json()["count"]
        # Large numbers are grouped (en-US: 1,234).
        assert int(total) >= 1000
        expect(page.locator("#total-events")).to_have_text(f"{int(total):,}")
        expect(page.locator("#alert-counts tbody tr")).to_have_count(5)
        expect(page.locator("svg.chart rect.bar").first).to_be_attached()


def test_a_tenant_never_sees_another_tenants_rows(browser: Any, base: str, seeded: str) -> None:
    tag = secrets.token_hex(3)
    with console_page(browser, base, GLOBEX) as page, httpx.Client(base_url=base) as http:
        expect(page.locator("#live-status")).to_have_attribute("data-events", "open")
        expect(page.locator("#live-status")).to_have_attribute("data-alerts", "open")
        acme = {"eventName": "acme-" + tag, "userId": "u"}
        http.post("/v1/events", json=acme, headers=bearer(ADMIN)).raise_for_status()
        alert = {"deviceId": "acme-dev-" + tag, "alertType": "t"}
        http.post("/v1/alerts", json=alert, headers=bearer(ADMIN)).raise_for_status()
        own = {"eventName": "globex-" + tag, "userId": "u"}
        http.post("/v1/events", json=own, headers=bearer(GLOBEX)).raise_for_status()
        own_alert = {"deviceId": "globex-dev-" + tag, "alertType": "t"}
        http.post("/v1/alerts", json=own_alert, headers=bearer(GLOBEX)).raise_for_status()
        expect(page.locator("#live-rows tr", has_text="globex-dev-" + tag)).to_be_visible()
        expect(page.locator("#live-rows tr", has_text="globex-" + tag).first).to_be_visible()
        assert "acme" not in page.locator("#live-rows").inner_text()

        page.goto(base + "/console/#/volumes/day")
        expect(page.locator("#volumes[aria-busy=false]")).to_be_visible()
        names = page.locator("#names tbody tr").evaluate_all("rs => rs.map(r => r.dataset.name)")
        assert names == ["globex-" + tag]
        page.goto(base + "/console/#/alerts")
        expect(page.locator("#alerts-table tbody tr")).to_have_count(1)
        assert "globex-dev-" in page.locator("#alerts-table").inner_text()
        # acme's alert, asked for by id, is not found for globex.
        page.goto(base + f"/console/#/alerts/{seeded}")
        expect(page.locator("#alert-detail .error")).to_contain_text("no alert with tracking_id")


def test_a_read_only_token_gets_no_mutating_control_and_a_403_on_the_routes(
    browser: Any, base: str, seeded: str
) -> None:
    mutating = [
        route
        for op in OPERATIONS
        if op.scope in (WRITE, ADMIN_SCOPE)
        for route in op.routes
        if "{" not in route[1]
    ]
    assert mutating
    with console_page(browser, base, READER) as page:
        expect(page.locator("#who")).to_contain_text("acme · read")
        for hash_ in PAGES:
            page.goto(base + "/console/#/" + hash_)
            page.wait_for_selector("main h1")
            assert page.locator("[data-mutates]").count() == 0, hash_
        # What a hand-made request from the page gets, with the page's own token.
        for method, path in mutating:
            status = page.evaluate(
                """async ([method, path, key]) => (await fetch(path, {method,
                    headers: {authorization: "Bearer " + sessionStorage.getItem(key),
                              "content-type": "application/json"},
                    body: "{}"})).status""",
                [method, path, TOKEN_KEY],
            )
            assert status == 403, (method, path)


def test_a_token_without_read_is_told_so_and_an_unknown_one_asked_again(
    browser: Any, base: str
) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(base + "/console/")
        page.fill("#token", WRITER)
        page.click("button[type=submit]")
        expect(page.locator(".signin .error")).to_contain_text("may not read")
        page.fill("#token", "not-a-token")
        page.click("button[type=submit]")
        expect(page.locator(".signin .error")).to_contain_text("did not accept")
        assert page.evaluate(f"sessionStorage.getItem({TOKEN_KEY!r})") is None
    finally:
        context.close()


def test_the_token_stays_in_session_storage_and_headers_and_the_csp_holds(
    browser: Any, base: str
) -> None:
    requests: list[Any] = []
    responses: list[Any] = []
    with console_page(browser, base, ADMIN) as page:
        # Playwright cannot take a builtin method (list.append) as a handler.
        page.on("request", lambda r: requests.append(r))  # noqa: PLW0108
        page.on("response", lambda r: responses.append(r))  # noqa: PLW0108
        for hash_ in PAGES:
            page.goto(base + "/console/#/" + hash_)
            page.wait_for_selector("main h1")
        page.reload()
        page.wait_for_selector("#nav a")
        assert page.evaluate("document.cookie") == ""
        assert page.evaluate("localStorage.length") == 0
        assert page.evaluate(f"sessionStorage.getItem({TOKEN_KEY!r})") == ADMIN
        # An injected inline script does not run: the policy forbids it.
        ran = page.evaluate(
            """() => { const s = document.createElement("script");
                s.textContent = "window.inlineRan = true"; document.body.append(s);
                return window.inlineRan === true; }"""
        )
        assert ran is False
    api = [r for r in requests if "/v1/" in r.url or "/console/api/" in r.url]
    assert api
    for request in requests:
        assert ADMIN not in request.url
    for request in api:
        assert request.headers.get("authorization") == f"Bearer {ADMIN}", request.url
    pages = [r for r in responses if "/console/" in r.url and "/api/" not in r.url]
    assert pages
    for response in pages:
        headers = response.headers
        assert "set-cookie" not in headers
        assert "script-src 'self'" in headers["content-security-policy"]
        assert "unsafe-inline" not in headers["content-security-policy"]


def test_the_pages_work_from_the_keyboard_with_visible_focus(browser: Any, base: str) -> None:
    with console_page(browser, base, ADMIN) as page:
        page.reload()  # start from the top of the page, as a visitor does
        page.wait_for_selector("#nav a")
        for _ in range(12):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.textContent") == "Volumes":
                break
        outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        assert outline != "none"
        page.keyboard.press("Enter")
        expect(page.locator("main h1")).to_have_text("Volumes")
        assert page.evaluate("document.activeElement.id") == "main"


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280x800", "390x844"])
def test_every_page_passes_axe_with_no_serious_violation(
    browser: Any, base: str, seeded: str, viewport: dict[str, int]
) -> None:
    with console_page(browser, base, ADMIN, viewport=viewport) as page:
        for hash_ in (*PAGES, f"alerts/{seeded}"):
            page.goto(base + "/console/#/" + hash_)
            page.wait_for_selector("main h1")
            if hash_ != "live":  # its streams never go idle
                page.wait_for_load_state("networkidle")
            page.wait_for_timeout(300)
            bad = serious_violations(page)
            assert not bad, f"#{hash_} at {viewport}: {bad}"
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= viewport["width"], f"#{hash_} scrolls sideways at {viewport}"
