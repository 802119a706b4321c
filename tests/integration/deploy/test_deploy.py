"""The deployment files, parsed and checked for what a real deployment relies on.

No container runtime is needed: the Dockerfile is read as instructions, the
Compose and Kubernetes files as YAML, and every ``EVENTWIRE_*`` variable they
set must be a real config field whose value the server would accept.
"""

from __future__ import annotations

import asyncio
import sys

from eventwire.testing import running_server
from tests.support.deploy import eventwire_services


async def test_compose_healthcheck_speaks_grpc_health() -> None:
    (svc, *_) = eventwire_services().values()
    command = svc["healthcheck"]["test"]
    assert command[:3] == ["CMD", "python", "-c"]
    code = command[3]
    assert "127.0.0.1:50051" in code

    async def run(address: str) -> int:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", code.replace("127.0.0.1:50051", address)
        )
        return await asyncio.wait_for(proc.wait(), 30)

    async with running_server() as server:
        assert await run(server.address) == 0
        address = server.address
    assert await run(address) != 0, "a stopped server must fail the check"
