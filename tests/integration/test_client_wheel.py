"""`pip install eventwire` is the client alone: the wheel, installed without extras, sends events.

The wheel is built from this checkout and installed into a fresh virtualenv
with exactly the client's locked dependencies (``deploy/runtime_requirements.py
--client``, hashed); ``pip check`` then proves they are all the wheel declares.
From that venv a script imports the public client names and delivers an event,
an alert and a tracked event to a server run from the full install. The same
wheel is checked to carry the web console's static files, which the server serves.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import grpc
import pytest

from eventwire.api import analytics_pb2, analytics_pb2_grpc
from eventwire.testing._process import ServerProcess
from tests.conftest import CHANNEL_OPTIONS
from tests.support.paths import ROOT

SERVER_ONLY = ("psycopg", "psycopg-binary", "psycopg-pool", "uvicorn", "httptools", "rich")

CLIENT_SCRIPT = textwrap.dedent(
    """
    import asyncio
    import sys

    import eventwire
    from eventwire import AnalyticsClient, SyncTracker, TelemetryClient, Tracker
    from eventwire.client import SyncAnalyticsClient

    target = sys.argv[1]
    assert Tracker.__name__ == "Tracker"

    with SyncAnalyticsClient(target, timeout=5) as client:
        assert client.track_event("wheel.sync", "u1", event_id="wheel-1").success

    async def main() -> None:
        async with AnalyticsClient(target, timeout=5) as analytics:
            assert (await analytics.track_event("wheel.async", event_id="wheel-2")).success
        async with TelemetryClient(target) as telemetry:
            assert (await telemetry.report_alert("dev-1", "overheat")).acknowledged

    asyncio.run(main())
    with SyncTracker(target) as tracker:
        tracker.track("wheel.tracked", user_id="u2", event_id="wheel-3")
        assert tracker.flush(timeout=10)
    print("client", eventwire.__version__)
    """
)


def run(*argv: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, check=False, cwd=cwd, timeout=300
    )
    assert done.returncode == 0, f"{argv} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", tmp, ROOT)
    (built,) = tmp.glob("eventwire-*.whl")
    return built


@pytest.fixture(scope="module")
def client_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("venv")
    lock = tmp / "client.lock"
    lock.write_text(run(sys.executable, ROOT / "deploy" / "runtime_requirements.py", "--client"))
    venv = tmp / "venv"
    run(sys.executable, "-m", "venv", venv)
    pip = (venv / "bin" / "python", "-m", "pip", "--disable-pip-version-check")
    run(*pip, "install", "--quiet", "--require-hashes", "--no-deps", "-r", lock)
    run(*pip, "install", "--quiet", "--no-deps", wheel)
    return venv


def test_the_wheel_carries_the_consoles_static_files(wheel: Path) -> None:
    # The gateway serves /console/ from these package files: without them it has no pages.
    static = ROOT / "src" / "eventwire" / "frontends" / "http" / "console" / "static"
    inside = "eventwire/frontends/http/console/static/"
    with zipfile.ZipFile(wheel) as archive:
        packed = {n[len(inside) :] for n in archive.namelist() if n.startswith(inside)}
    assert packed == {path.name for path in static.iterdir()}
    assert {"index.html", "app.js", "app.css", "live.js"} <= packed


def test_the_client_install_declares_exactly_what_it_needs(client_venv: Path) -> None:
    python = client_venv / "bin" / "python"
    # Every requirement the wheel declares (no extras) is met by the client lock alone.
    run(python, "-m", "pip", "check")
    installed = run(python, "-m", "pip", "list", "--format", "freeze").lower()
    names = {line.split("==")[0] for line in installed.split()}
    assert "eventwire" in names
    assert not names & set(SERVER_ONLY), f"server packages in the client install: {names}"


def test_the_server_refuses_to_start_from_a_client_install_and_says_why(
    client_venv: Path,
) -> None:
    done = subprocess.run(
        [client_venv / "bin" / "eventwire", "serve"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 2
    assert "eventwire[server]" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_client_only_install_delivers_to_a_real_server(client_venv: Path, tmp_path: Path) -> None:
    script = tmp_path / "client.py"
    script.write_text(CLIENT_SCRIPT)
    with ServerProcess("--store", f"sqlite:///{tmp_path / 'e.db'}") as server:
        # -I: nothing from this checkout or the dev venv can leak onto its path.
        out = run(client_venv / "bin" / "python", "-I", script, server.address, cwd=tmp_path)
        assert out.startswith("client ")
        with grpc.insecure_channel(server.address, options=CHANNEL_OPTIONS) as channel:
            stub = analytics_pb2_grpc.AnalyticsServiceStub(channel)
            stored = stub.CountEvents(analytics_pb2.CountEventsRequest(), timeout=5).count
    assert stored == 3
