"""Token files parse strictly, errors name no secret, and every RPC has a scope."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventwire.api import analytics_pb2, destinations_pb2, plans_pb2, telemetry_pb2
from eventwire.frontends.grpc.auth import METHOD_SCOPES
from eventwire.frontends.grpc.auth import READ_METHODS as READS
from eventwire.security.auth import Authenticator, TokenTable, hash_token
from tests.support.security import (
    GLOBEX,
    TOKENS,
    UNKNOWN,
    token,
    token_file_text,
)


def test_every_rpc_of_the_contract_has_a_scope() -> None:
    methods = {
        f"/{service.full_name}/{method.name}"
        for module in (analytics_pb2, telemetry_pb2, destinations_pb2, plans_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    assert methods == set(METHOD_SCOPES)
    assert {m.rpartition("/")[2] for m, s in METHOD_SCOPES.items() if s == "read"} == READS


def test_token_file_format_and_errors_that_name_no_secret(tmp_path: Path) -> None:
    secret = token("pasted")
    table = TokenTable.parse(token_file_text(TOKENS) + "\n   # comment only\n")
    assert len(table.entries) == 4
    assert table.lookup(GLOBEX) is not None
    assert table.lookup(GLOBEX).tenant == "globex"  # type: ignore[union-attr]
    assert table.lookup(UNKNOWN) is None
    bad_lines = [
        f"{secret} acme write",  # the raw token pasted instead of its hash
        f"{hash_token(secret)} acme",
        f"{hash_token(secret)} acme superuser",
        f"{hash_token(secret)} -acme write",
        f"{hash_token(secret)} acme write\n{hash_token(secret)} other read",
    ]
    for text in bad_lines:
        with pytest.raises(ValueError, match="line") as info:
            TokenTable.parse(text)
        assert secret not in str(info.value)
    with pytest.raises(ValueError, match="cannot read token file"):
        Authenticator(tmp_path / "missing")
