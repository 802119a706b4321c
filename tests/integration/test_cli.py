"""The CLI against a real server, as a user runs it."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from collections.abc import Iterator

import pytest

from eventwire.client import TelemetryClient
from eventwire.runtime.cli import EXIT_OK, EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_USAGE
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


async def test_alerts_list_and_watch_and_events_query_and_export(server: Server) -> None:
    target = ("--target", server.address)
    for n in range(3):
        code, _, err = await cli("alert", f"dev-{n}", "heat", *target)
        assert code == EXIT_OK, err
    code, out, _ = await cli("alerts", "list", "--json", "--page-size", "2", *target)
    assert code == EXIT_OK
    listed = [json.loads(line) for line in out.splitlines()]
    assert [a["deviceId"] for a in listed] == ["dev-0", "dev-1", "dev-2"]
    code, out, _ = await cli("alerts", "list", "--device", "dev-1", *target)
    assert code == EXIT_OK
    assert len(out.splitlines()) == 1
    assert "dev-1  heat" in out
    assert "cursor=" in out  # bound to this filter, so not the unfiltered one

    # A watch resumed after the first alert prints the others, then new ones live.
    watch = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "eventwire",
        "alerts",
        "watch",
        "--json",
        "--after",
        listed[0]["cursor"],
        *target,
        stdout=asyncio.subprocess.PIPE,
    )
    assert watch.stdout is not None
    try:
        seen = [json.loads(await watch.stdout.readline()) for _ in range(2)]
        assert [a["deviceId"] for a in seen] == ["dev-1", "dev-2"]
        code, _, _ = await cli("alert", "dev-live", "heat", *target)
        assert code == EXIT_OK
        live = json.loads(await watch.stdout.readline())
        assert live["deviceId"] == "dev-live"
    finally:
        watch.kill()
        await watch.wait()

    for n in range(4):
        code, _, _ = await cli(
            "track",
            "view" if n % 2 else "signup",
            "--user",
            f"u{n}",
            "--timestamp",
            str(1_749_945_600_000 + n),
            *target,
        )
        assert code == EXIT_OK
    code, out, _ = await cli(
        "events", "query", "--bucket", "hour", "--group-by", "event_name", *target
    )
    assert code == EXIT_OK
    assert out.splitlines() == [
        "2025-06-15T00:00:00.000Z\tsignup\t2\t2",
        "2025-06-15T00:00:00.000Z\tview\t2\t2",
    ]
    code, out, _ = await cli("events", "export", *target)
    assert code == EXIT_OK
    exported = [json.loads(line) for line in out.splitlines()]
    assert [e["event"]["userId"] for e in exported] == ["u0", "u1", "u2", "u3"]
    code, out, _ = await cli("events", "export", "--after", exported[1]["cursor"], *target)
    assert [json.loads(line)["event"]["userId"] for line in out.splitlines()] == ["u2", "u3"]


async def test_read_commands_name_bad_input(server: Server) -> None:
    code, _, err = await cli("events", "query", "--group-by", "colour", "--target", server.address)
    assert code == EXIT_REFUSED
    assert "INVALID_ARGUMENT" in err
    assert "group_by:" in err
    code, _, err = await cli("alerts", "watch", "--after", "junk", "--target", server.address)
    assert code == EXIT_REFUSED
    assert "after:" in err


async def test_track_gives_each_event_an_id_so_a_retry_is_stored_once(server: Server) -> None:
    # The SDK assigns the idempotency key before the first attempt.
    target = ("--target", server.address)
    code, out, _ = await cli("track", "signup", "--json", *target)
    assert code == EXIT_OK
    assert len(json.loads(out)["eventId"]) == 36
    code, out, _ = await cli("alert", "dev-1", "heat", *target)
    assert code == EXIT_OK
    assert "tracking_id: " in out


async def test_severity_names_are_the_clients_and_a_bad_one_is_a_usage_error(
    server: Server,
) -> None:
    target = ("--target", server.address)
    async with TelemetryClient(server.address) as client:
        for severity in ("info", "warning", "critical"):
            await client.report_alert("dev-1", severity, severity=severity)
    code, out, _ = await cli("alerts", "list", "--min-severity", "SEVERITY_CRITICAL", *target)
    assert code == EXIT_OK
    assert [line.split()[1] for line in out.splitlines()] == ["CRITICAL"]
    code, out, _ = await cli("alerts", "list", "--min-severity", "2", *target)
    assert [line.split()[1] for line in out.splitlines()] == ["WARNING", "CRITICAL"]
    code, _, err = await cli("alerts", "list", "--min-severity", "loud", *target)
    assert code == EXIT_USAGE
    assert "min_severity must be one of" in err


async def test_bench_is_not_a_command_of_the_product() -> None:
    code, _, err = await cli("bench")
    assert code == EXIT_USAGE
    assert "invalid choice: 'bench'" in err
