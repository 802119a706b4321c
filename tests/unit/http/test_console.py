"""The console's files and routes in-process: CSP, no cookies, scopes, status maths, audit lines."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from eventwire._errors import NotFound
from eventwire._rpc import OPERATIONS
from eventwire.frontends.http.app import _audited
from eventwire.frontends.http.console import ServerStatus
from eventwire.frontends.http.routes import Reply
from eventwire.observability.metrics import ServerMetrics
from eventwire.security.auth import Authenticator, Caller, TokenTable, hash_token
from tests.support.asgi import gateway_client
from tests.support.gateway import status_of, violations_of
from tests.support.security import ACME_READER, ACME_WRITER, TOKENS, token_file_text


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_pages_are_served_with_a_strict_policy_and_no_cookie(tmp_path: Path) -> None:
    async with gateway_client(tmp_path / "e.db") as http:
        moved = await http.get("/console")
        assert (moved.status_code, moved.headers["location"]) == (308, "/console/")
        index = await http.get("/console/")
        assert index.status_code == 200
        assert index.headers["content-type"] == "text/html; charset=utf-8"
        assert '<script src="app.js" defer></script>' in index.text
        for path, kind in (("app.js", "text/javascript"), ("app.css", "text/css")):
            reply = await http.get("/console/" + path)
            assert reply.headers["content-type"].startswith(kind)
        for reply in (index, moved, await http.get("/console/api/status")):
            policy = reply.headers["content-security-policy"]
            assert "default-src 'none'" in policy
            assert "script-src 'self';" in policy
            assert "unsafe" not in policy
            assert reply.headers["x-content-type-options"] == "nosniff"
            assert "set-cookie" not in reply.headers
        status_of(await http.get("/console/nothing.js"), 404, 5)
        refused = await http.post("/console/", content=b"")
        assert (refused.status_code, refused.headers["allow"]) == (405, "GET, HEAD")


async def test_console_routes_need_a_token_and_their_scope(tmp_path: Path) -> None:
    (tmp_path / "tokens").write_text(token_file_text(TOKENS))
    auth = Authenticator(str(tmp_path / "tokens"))
    async with gateway_client(tmp_path / "e.db", auth=auth) as http:
        assert (await http.get("/console/")).status_code == 200  # no data in the files
        status_of(await http.get("/console/api/whoami"), 401, 16)
        who = (await http.get("/console/api/whoami", headers=bearer(ACME_READER))).json()
        assert (who["tenant"], who["scopes"]) == ("acme", ["read"])
        # The API routes this gateway serves (no destinations configured here), so a
        # page for a feature it lacks stays out of the navigation.
        table = {f"{verb} {path}" for op in OPERATIONS for verb, path in op.routes}
        routes = set(who["routes"]) - {"GET /healthz", "GET /readyz", "GET /openapi.json"}
        assert routes <= table
        assert {"GET /v1/alerts:watch", "GET /v1/events:query"} <= routes
        assert "GET /v1/destinations" not in routes
        who = (await http.get("/console/api/whoami", headers=bearer(ACME_WRITER))).json()
        assert (who["tenant"], who["scopes"]) == ("acme", ["write"])
        for path in ("status", "events:tail", "alerts:now"):
            status_of(await http.get("/console/api/" + path, headers=bearer(ACME_WRITER)), 403, 7)
        status = await http.get("/console/api/status", headers=bearer(ACME_READER))
        assert status.json() == {"serving": True}  # a gateway built without metrics
        now = await http.get("/console/api/alerts:now", headers=bearer(ACME_READER))
        assert now.json()["cursor"]


@pytest.mark.parametrize(
    ("query", "field"),
    [("user_id=a%00b", "user_id"), ("event_name=" + "x" * 300, "event_name"), ("bogus=1", "bogus")],
)
async def test_a_bad_tail_filter_is_refused_naming_it(
    tmp_path: Path, query: str, field: str
) -> None:
    async with gateway_client(tmp_path / "e.db") as http:
        reply = await http.head("/console/api/events:tail?" + query)
        assert reply.status_code == 400
        body = status_of(await http.get("/console/api/events:tail?" + query), 400, 3)
        assert field in [name for name, _ in violations_of(body)]


def test_status_rates_and_latency_quantiles_over_the_latest_window() -> None:
    metrics = ServerMetrics(CollectorRegistry())
    now = [100.0]
    status = ServerStatus(metrics, lambda: True, clock=lambda: now[0])
    for _ in range(10):
        metrics.commits.committed(rows=5, seconds=0.002, stored=5, alerts=0)
    metrics.queue_rows.set(7)
    now[0] += 0.5
    assert status.read()["windowSeconds"] == 0.0  # not a full window yet
    now[0] += 1.5
    view = status.read()
    assert view["commitsPerSecond"] == 5.0
    assert view["eventsPerSecond"] == 25.0
    assert 1.0 < float(view["commitP50Ms"]) <= 2.5  # type: ignore[arg-type]
    assert (view["queueRows"], view["eventsStored"], view["serving"]) == (7, 50, True)
    now[0] += 60  # nobody looked for a minute: no average over it posing as a rate
    assert status.read()["windowSeconds"] == 0.0
    now[0] += 1
    assert status.read()["commitsPerSecond"] == 0.0


async def test_an_admin_operation_is_logged_with_who_asked_and_how_it_ended(
    caplog: pytest.LogCaptureFixture,
) -> None:
    table = TokenTable.parse(f"{hash_token('test')}  acme  admin")
    caller = table.lookup("test")
    assert caller == Caller("acme", frozenset({"admin"}), "9f86d081884c")  # sha256("test")[:12]

    async def done() -> Reply:
        return Reply(200, b"{}")

    async def refused() -> Reply:
        raise NotFound("no destination 'x'")

    with caplog.at_level(logging.INFO, logger="eventwire.audit"):
        assert (await _audited("Destinations.Pause", caller, done())).status == 200
        with pytest.raises(NotFound):
            await _audited("Destinations.Pause", caller, refused())
    lines = [(r.getMessage(), r.token_id, r.status) for r in caplog.records]  # type: ignore[attr-defined]
    assert lines == [
        ("admin operation Destinations.Pause by tenant 'acme' ended with 200", "9f86d081884c", 200),
        ("admin operation Destinations.Pause by tenant 'acme' ended with 404", "9f86d081884c", 404),
    ]
