"""Which scope each RPC needs, and where a gRPC call carries its bearer token.

The check itself runs in every call's endpoint
(:mod:`eventwire.frontends.grpc.endpoints`), on
:mod:`eventwire.security.auth`'s rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from eventwire._rpc import ANALYTICS_METHODS, TELEMETRY_METHODS
from eventwire.security.auth import READ, WRITE

READ_METHODS: Final = frozenset(
    {"CountEvents", "GetAlert", "ListAlerts", "WatchAlerts", "QueryEvents", "ExportEvents"}
)
"""The RPCs that read; the read scope allows them, and only them."""

METHOD_SCOPES: Final[Mapping[str, str]] = {
    path: READ if name in READ_METHODS else WRITE
    for table in (ANALYTICS_METHODS, TELEMETRY_METHODS)
    for name, path in table.items()
}
"""The scope each RPC needs: ``read`` for the reads above, ``write`` for the rest.

A method of a protected service missing here is refused."""


def authorization(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The ``authorization`` value; "" when there are several or it is binary."""
    values = [v for k, v in metadata or () if k == "authorization"]
    if len(values) != 1 or not isinstance(values[0], str):
        # Two authorization entries are ambiguous; refusing is the only safe reading.
        return "" if values else None
    return values[0]
