"""JSON/HTTP gateway: eventwire's API for clients without gRPC, in the same process.

See the README's "JSON/HTTP gateway" section for the routes and the error model.
"""

from __future__ import annotations

from eventwire.gateway.app import GatewayApp
from eventwire.gateway.openapi import openapi_document
from eventwire.gateway.server import HttpGateway

__all__ = ["GatewayApp", "HttpGateway", "openapi_document"]
