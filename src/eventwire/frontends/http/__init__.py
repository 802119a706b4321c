"""The JSON/HTTP front door: the gateway's ASGI app, its OpenAPI document and error mapping.

See docs/gateway.md for the routes and the error model.
"""

from __future__ import annotations

from eventwire.frontends.http.app import GatewayApp
from eventwire.frontends.http.limits import HttpLimits, connection_cap
from eventwire.frontends.http.openapi import openapi_document
from eventwire.frontends.http.server import HttpGateway, HttpThread, uvicorn_tls_options

__all__ = [
    "GatewayApp",
    "HttpGateway",
    "HttpLimits",
    "HttpThread",
    "connection_cap",
    "openapi_document",
    "uvicorn_tls_options",
]
