"""Write docs/console/*.png: each page of the web console, on a server with sample data.

    python tools/screenshots.py            # `make screenshots`

Starts ``eventwire serve`` on ephemeral ports with a token for tenant ``acme``
and a webhook destination (a local receiver that refuses one batch, so there
is a dead letter), fills it with a day of sample events and a few alerts (and,
where tracking plans exist, the example plan and a few events it
quarantines), keeps a trickle of
events coming while the Live and Server pages are shot, and drives Debian's
chromium (never a downloaded browser) through Playwright.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from eventwire.testing._process import ServerProcess  # noqa: E402
from tests.support.browser import (  # noqa: E402
    bearer,
    chromium_missing,
    console_page,
    launch,
    seed,
    webhook_destination,
)
from tests.support.browser import token_file as write_tokens  # noqa: E402

TOKEN = "screenshots-admin-token"  # noqa: S105 - a throwaway server's, gone when it stops
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
PLAN = ROOT / "examples" / "tracking-plan.yaml"


def trickle(base: str, stop: threading.Event) -> None:
    """Events (and now and then an alert) at a few dozen a second, as a live site sends."""
    rng = random.Random(7)  # noqa: S311 - sample data, not secrets
    names = ("page_view", "page_view", "page_view", "search", "add_to_cart", "signup", "purchase")
    with httpx.Client(base_url=base, headers=bearer(TOKEN), timeout=5) as http:
        n = 0
        while not stop.is_set():
            events = [
                {
                    "eventName": rng.choice(names),
                    "userId": f"user-{rng.randrange(60)}",
                    "properties": {"path": rng.choice(("/", "/pricing", "/docs", "/cart"))},
                }
                for _ in range(rng.randrange(2, 6))
            ]
            http.post("/v1/events:batch", json={"events": events})
            n += 1
            if n % 25 == 0:
                alert = {
                    "deviceId": f"sensor-{rng.randrange(40)}",
                    "alertType": rng.choice(("battery_low", "offline", "overheat")),
                    "severity": rng.choice(
                        ("SEVERITY_INFO", "SEVERITY_WARNING", "SEVERITY_CRITICAL")
                    ),
                    "message": "reported by the field gateway",
                }
                http.post("/v1/alerts", json=alert)
            time.sleep(0.1)


def shoot(browser: Any, base: str, out: Path, alert: str, load: threading.Thread) -> None:
    """Every page, in the order a visitor meets them."""
    context = browser.new_context(viewport=DESKTOP, locale="en-US")
    page = context.new_page()
    page.goto(base + "/console/")
    page.wait_for_selector("#token")
    page.fill("#token", "•" * 8)
    page.screenshot(path=out / "signin.png")
    context.close()
    with console_page(browser, base, TOKEN, viewport=DESKTOP, locale="en-US") as page:
        page.wait_for_selector("#live-status[data-events=open]")
        load.start()
        page.wait_for_timeout(4000)
        page.screenshot(path=out / "live.png")
        page.goto(base + "/console/#/volumes/day")
        page.wait_for_selector("#volumes[aria-busy=false]")
        page.screenshot(path=out / "volumes.png", full_page=True)
        page.goto(base + "/console/#/alerts")
        page.select_option("#a_range", "week")
        page.click("text=Apply filters")
        page.wait_for_selector("#alerts-table")
        page.screenshot(path=out / "alerts.png")
        page.goto(base + f"/console/#/alerts/{alert}")
        page.wait_for_selector("#alert-detail dl")
        page.screenshot(path=out / "alert.png")
        page.goto(base + "/console/#/destinations")
        page.wait_for_selector("#dest-table")
        page.wait_for_timeout(5500)  # one more poll: the counts have moved
        page.screenshot(path=out / "destinations.png")
        if page.locator("#nav a[href='#/plans']").count():
            page.goto(base + "/console/#/plans")
            page.wait_for_selector("#quarantine-table")
            page.locator("#quarantine-table summary").last.click()  # one group's samples
            page.screenshot(path=out / "plans.png")
        page.goto(base + "/console/#/server")
        page.wait_for_timeout(9000)
        page.screenshot(path=out / "server.png")
    with console_page(browser, base, TOKEN, viewport=PHONE, locale="en-US") as page:
        page.wait_for_timeout(3000)
        page.screenshot(path=out / "live-phone.png")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "console")
    args = parser.parse_args()
    missing = chromium_missing()
    if missing:
        print(missing, file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tokens = write_tokens(Path(tmp) / "tokens", {TOKEN: ("acme", "read,write,admin")})
        store = f"sqlite:///{Path(tmp) / 'events.db'}"
        with (
            webhook_destination("analytics-hook") as destination,
            ServerProcess(
                "--store", store, "--auth-tokens", str(tokens), "--destination", destination
            ) as server,
        ):
            base = f"http://{server.http_address}"
            seed(base, TOKEN)
            httpx.post(
                base + "/v1/events", json={"eventName": "poison"}, headers=bearer(TOKEN)
            ).raise_for_status()
            if PLAN.exists() and httpx.get(base + "/v1/plans").status_code != 404:
                plan = {"document": PLAN.read_text()}
                httpx.post(base + "/v1/plans", json=plan, headers=bearer(TOKEN))
                for value in ("gold", "platinum", "trial"):
                    body = {"eventName": "signup", "userId": "u1", "properties": {"plan": value}}
                    httpx.post(base + "/v1/events", json=body, headers=bearer(TOKEN))
            first = httpx.get(base + "/v1/alerts", headers=bearer(TOKEN)).json()["alerts"][0]
            stop = threading.Event()
            load = threading.Thread(target=trickle, args=(base, stop), daemon=True)
            with sync_playwright() as playwright:
                browser = launch(playwright)
                try:
                    shoot(browser, base, args.out, first["trackingId"], load)
                finally:
                    stop.set()
                    browser.close()
    for png in sorted(args.out.glob("*.png")):
        print(png.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
