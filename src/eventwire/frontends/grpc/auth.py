"""Which scope each RPC needs, and where a gRPC call carries its bearer token.

Both come from elsewhere: the scopes from the operations table
(:mod:`eventwire._rpc`), the rules for the header from
:mod:`eventwire.security.auth`. The check itself runs in every call's endpoint
(:mod:`eventwire.frontends.grpc.endpoints`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from eventwire._rpc import BY_METHOD, READ
from eventwire.security.auth import authorization_value

METHOD_SCOPES: Final[Mapping[str, str]] = {method: op.scope for method, op in BY_METHOD.items()}
"""The scope each RPC needs. A method of a protected service missing here is refused."""

READ_METHODS: Final = frozenset(
    method.rpartition("/")[2] for method, scope in METHOD_SCOPES.items() if scope == READ
)
"""The RPCs that read; the read scope allows them, and only them."""


def authorization(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The call's ``authorization`` value, by :func:`authorization_value`'s rules."""
    return authorization_value([v for k, v in metadata or () if k == "authorization"])
