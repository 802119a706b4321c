"""The CLI against a real server, as a user runs it."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from collections.abc import Iterator

import pytest

from eventwire.runtime.cli import EXIT_OK, EXIT_REFUSED, EXIT_UNREACHABLE
from eventwire.runtime.server import Server


async def cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "eventwire",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_track_count_alert_get_alert(server: Server) -> None:
    target = ("--target", server.address)
    code, out, _ = await cli("track", "signup", "--user", "u1", "-p", "plan=pro", *target)
    assert code == EXIT_OK
    assert "success: True" in out
    code, out, _ = await cli("count", "--event", "signup", *target)
    assert (code, out.strip()) == (EXIT_OK, "count: 1")
    code, out, _ = await cli("alert", "dev-1", "overheat", "--json", *target)
    assert code == EXIT_OK
    reply = json.loads(out)
    assert reply["acknowledged"] is True
    code, out, _ = await cli("get-alert", reply["trackingId"], *target)
    assert code == EXIT_OK
    assert "device_id: dev-1" in out


async def test_bad_input_exits_1_and_names_the_field(server: Server) -> None:
    code, _, err = await cli("track", "x", "--timestamp", "946684799", "--target", server.address)
    assert code == EXIT_REFUSED
    assert "INVALID_ARGUMENT" in err
    assert "timestamp:" in err
    assert "as seconds before 2000-01-01" in err


async def test_unknown_alert_exits_1(server: Server) -> None:
    code, _, err = await cli("get-alert", "nope", "--target", server.address)
    assert code == EXIT_REFUSED
    assert "NOT_FOUND" in err


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port that is bound but not listening: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


async def test_unreachable_server_exits_3(closed_port: int) -> None:
    code, _, err = await cli("track", "x", "--target", f"127.0.0.1:{closed_port}", "--timeout", "2")
    assert code == EXIT_UNREACHABLE
    assert "UNAVAILABLE" in err or "DEADLINE_EXCEEDED" in err


async def test_bad_property_syntax_is_a_usage_error() -> None:
    code, _, err = await cli("track", "x", "-p", "novalue")
    assert code == 2
    assert "KEY=VALUE" in err
