"""Admin operations leave one audit line each, on both doors: operation, tenant, token id
(never the token) and outcome; a caller refused for its scope leaves none."""

from __future__ import annotations

import logging
from pathlib import Path

import grpc
import httpx
import pytest

from eventwire.api import destinations_pb2, destinations_pb2_grpc
from eventwire.security.auth import hash_token
from eventwire.testing import running_server
from tests.support.browser import webhook_destination
from tests.support.security import ACME_READER, bearer, token, token_file_text

ADMIN = token("admin")


async def test_each_admin_operation_is_logged_with_who_and_how_it_ended(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(
        token_file_text({ADMIN: ("acme", "admin,read"), ACME_READER: ("acme", "read")})
    )
    caplog.set_level(logging.INFO, logger="eventwire.audit")
    with webhook_destination("hook") as destination:
        async with (
            running_server(auth_tokens=str(tokens), destinations=(destination,)) as srv,
            grpc.aio.insecure_channel(srv.address) as channel,
            httpx.AsyncClient(base_url=f"http://{srv.http_address}") as http,
        ):
            stub = destinations_pb2_grpc.DestinationsServiceStub(channel)
            pause = destinations_pb2.DestinationRequest(name="hook")
            await stub.PauseDestination(pause, metadata=bearer(ADMIN))
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.ResumeDestination(pause, metadata=bearer(ACME_READER))
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
            with pytest.raises(grpc.aio.AioRpcError) as missing:
                await stub.ResumeDestination(
                    destinations_pb2.DestinationRequest(name="nope"), metadata=bearer(ADMIN)
                )
            assert missing.value.code() == grpc.StatusCode.NOT_FOUND
            reply = await http.post(
                "/v1/destinations:resume",
                json={"name": "hook"},
                headers={"authorization": f"Bearer {ADMIN}"},
            )
            assert reply.status_code == 200, reply.text
            reply = await http.post(
                "/v1/destinations:resume",
                json={"name": "hook"},
                headers={"authorization": f"Bearer {ACME_READER}"},
            )
            assert reply.status_code == 403
    lines = [r for r in caplog.records if r.name == "eventwire.audit"]
    assert [(r.operation, r.status) for r in lines] == [  # type: ignore[attr-defined]
        ("DestinationsService.PauseDestination", "OK"),
        ("DestinationsService.ResumeDestination", "NOT_FOUND"),
        ("DestinationsService.ResumeDestination", 200),
    ]
    assert {(r.tenant, r.token_id) for r in lines} == {("acme", hash_token(ADMIN)[:12])}  # type: ignore[attr-defined]
    assert all(ADMIN not in r.getMessage() for r in lines)
