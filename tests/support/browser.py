"""Debian's chromium driven by Playwright for Python, and a server for the console to show.

Playwright never downloads a browser here (``playwright install`` is never
run): it drives ``/usr/bin/chromium`` through ``executable_path``. Used by the
browser tests, ``tools/screenshots.py`` and ``bench/console.py``.
"""

from __future__ import annotations

import base64
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from eventwire.security.auth import hash_token

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
TOKEN_KEY = "eventwire.token"  # noqa: S105 - the name of a storage key, not a secret
"""Where the console keeps the token (sessionStorage), as app.js names it."""


def chromium_missing() -> str | None:
    """Why the browser cannot run here, or None when it can."""
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        return (
            f"!!! {CHROMIUM} NOT FOUND: the console's browser tests DID NOT RUN. "
            "Install Debian's chromium package (.ci/run does). !!!"
        )
    return None


def launch(playwright: Any) -> Any:
    """A headless chromium (the system one, never a downloaded one)."""
    executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    return playwright.chromium.launch(executable_path=executable, args=list(CHROMIUM_ARGS))


def token_file(path: Path, tokens: dict[str, tuple[str, str]]) -> Path:
    """``--auth-tokens`` for ``{token: (tenant, "read,write")}``."""
    lines = [f"{hash_token(t)}  {tenant}  {scopes}" for t, (tenant, scopes) in tokens.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"} if token else {}


def seed(base: str, token: str = "", now_ms: int | None = None) -> int:
    """Sample events over the last day and a few alerts of each severity; how many events."""
    now = now_ms or int(time.time() * 1000)
    names = ("page_view", "signup", "add_to_cart", "purchase", "search", "logout")
    weights = (40, 6, 12, 4, 15, 3)
    events = [
        {
            "eventName": name,
            "userId": f"user-{(hour * 7 + i) % 37}",
            "timestamp": now - hour * 3_600_000 - i * 1000,
            "properties": {"plan": ("free", "pro", "team")[i % 3]},
        }
        for hour in range(24)
        for name, weight in zip(names, weights, strict=True)
        for i in range(weight * (1 + (hour % 6 == 0)) // 2 + 1)
    ]
    with httpx.Client(base_url=base, headers=bearer(token), timeout=10) as client:
        for start in range(0, len(events), 500):
            reply = client.post("/v1/events:batch", json={"events": events[start : start + 500]})
            reply.raise_for_status()
        alerts = [
            ("boiler-7", "overheat", "SEVERITY_CRITICAL", "flow temperature 96 °C"),
            ("boiler-7", "pressure_low", "SEVERITY_WARNING", "0.7 bar"),
            ("pump-2", "vibration", "SEVERITY_WARNING", "bearing noise"),
            ("sensor-31", "battery_low", "SEVERITY_INFO", "12% left"),
            ("sensor-12", "offline", "SEVERITY_INFO", "no heartbeat for 10 min"),
        ]
        for hour, (device, kind, severity, message) in enumerate(alerts):
            body = {
                "deviceId": device,
                "alertType": kind,
                "severity": severity,
                "message": message,
                "timestamp": now - hour * 1_800_000,
                "attributes": {"site": "north", "firmware": "2.4.1"},
            }
            client.post("/v1/alerts", json=body).raise_for_status()
    return len(events)


class _PoisonHook(BaseHTTPRequestHandler):
    """Takes every batch but one carrying an event named "poison" (a 400: dead-lettered)."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(400 if b"poison" in body else 204)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def webhook_destination(name: str) -> Iterator[str]:
    """A local webhook receiver; yields the ``--destination`` value that relays to it."""
    hook = ThreadingHTTPServer(("127.0.0.1", 0), _PoisonHook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    try:
        yield f"{name}=http://127.0.0.1:{hook.server_address[1]}/hook?secret={secret}"
    finally:
        hook.shutdown()
        hook.server_close()


AXE = Path(__file__).resolve().parent.parent / "browser" / "vendor" / "axe.min.js"


def serious_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical findings on the page as it is now.

    axe is injected with ``evaluate()``, which goes through the DevTools protocol
    that the page's Content-Security-Policy does not govern (the page itself
    could never load it). Fails if axe checked next to nothing.
    """
    page.evaluate(AXE.read_text())
    result = page.evaluate(
        """async () => { const r = await axe.run(document);
            return {passes: r.passes.length, violations: r.violations.map(v =>
                ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target)}))}; }"""
    )
    assert result["passes"] > 10, result  # it audited something (contrast, labels, ...)
    return [v for v in result["violations"] if v["impact"] in ("serious", "critical")]


@contextmanager
def console_page(browser: Any, base: str, token: str = "", **options: Any) -> Iterator[Any]:
    """A fresh page (its own session storage) on the console, signed in with ``token``."""
    context = browser.new_context(**options)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(base + "/console/")
        if token:
            page.fill("#token", token)
            page.click("button[type=submit]")
        page.wait_for_selector("#nav a")
        yield page
        assert not errors, f"uncaught errors in the page: {errors}"
    finally:
        context.close()
