"""The operations table covers every RPC of the contract and every gateway route."""

from __future__ import annotations

from typing import Any

import pytest

from eventwire._rpc import ADMIN, BY_METHOD, BY_ROUTE, OPERATIONS, PER_MESSAGE, READ, WRITE
from eventwire.api import analytics_pb2, destinations_pb2, plans_pb2, telemetry_pb2
from eventwire.frontends.grpc.auth import METHOD_SCOPES, READ_METHODS
from eventwire.frontends.http.app import _OPEN, GatewayApp
from eventwire.frontends.http.openapi import openapi_document
from eventwire.security.auth import SCOPES


def _contract_methods() -> set[str]:
    return {
        f"/{service.full_name}/{method.name}"
        for module in (analytics_pb2, telemetry_pb2, destinations_pb2, plans_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }


def test_every_rpc_of_the_contract_is_in_the_table_once() -> None:
    methods = [op.method for op in OPERATIONS]
    assert len(methods) == len(set(methods))
    assert set(methods) == _contract_methods()


def test_every_operation_names_a_known_scope_and_cost_rule() -> None:
    assert {READ, WRITE, ADMIN} == SCOPES
    for op in OPERATIONS:
        assert op.scope in SCOPES, op
        assert op.cost == PER_MESSAGE, op


def test_grpc_auth_reads_its_scopes_from_the_table() -> None:
    assert dict(METHOD_SCOPES) == {method: op.scope for method, op in BY_METHOD.items()}
    assert {"CountEvents", "GetAlert", "ListAlerts", "WatchAlerts"} <= READ_METHODS
    assert "TrackEvent" not in READ_METHODS


_READ_POSTS = frozenset({"PlansService.DiffPlan"})
"""Reads whose request is a document, too big for a query string."""


def test_reads_are_gets_and_writes_are_posts() -> None:
    # The rule the gateway used to apply by HTTP method, kept as a check of the table.
    for (verb, path), op in BY_ROUTE.items():
        read_post = op.name in _READ_POSTS and verb == "POST"
        assert (verb == "GET" or read_post) == (op.scope == READ), (verb, path, op)


class _Unused:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the table check used the service ({name})")


def _app() -> GatewayApp:
    return GatewayApp(
        _Unused(),  # type: ignore[arg-type]
        reads=_Unused(),  # type: ignore[arg-type]
        plans=_Unused(),  # type: ignore[arg-type]
        ready=lambda: True,
        max_body_bytes=1024,
        destinations=_Unused(),  # type: ignore[arg-type]
    )


def test_every_gateway_route_is_an_operation_of_the_table_or_open() -> None:
    served = {(method, path) for path, methods in _app()._routes.items() for method in methods}
    assert {route for route in served if route[1] not in _OPEN} == set(BY_ROUTE)


def test_the_openapi_document_describes_every_route_of_the_table() -> None:
    paths = openapi_document()["paths"]
    for verb, path in BY_ROUTE:
        assert verb.lower() in paths.get(path, {}), (verb, path)
        assert BY_ROUTE[verb, path].name in paths[path][verb.lower()]["summary"]


@pytest.mark.parametrize("route", [("PUT", "/v1/events"), ("GET", "/v1/secret")])
def test_a_route_missing_from_the_table_refuses_to_start(route: tuple[str, str]) -> None:
    app = _app()

    async def handler(scope: Any, receive: Any) -> Any:
        raise AssertionError

    with pytest.raises(RuntimeError, match="operations table"):
        app._add(*route, handler)
