"""buf's breaking-change check against the seeds, and buf curl over gRPC reflection v1.

buf comes from the npm registry (the @bufbuild/buf package ships the binary),
pinned, installed once into .tools/. Where npm is missing the check is skipped
loudly; test_contract.py still compares every seed field and method.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
from pathlib import Path

from google.protobuf import descriptor_pb2

from eventwire.runtime.server import Server
from tests.support.paths import ROOT, SEEDS


def breaking(buf: Path, proto_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(buf), "breaking", str(proto_dir), "--against", str(SEEDS)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_contract_has_no_breaking_change_against_the_seeds(buf: Path) -> None:
    done = breaking(buf, ROOT / "proto")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_check_catches_a_renumbered_field(buf: Path, tmp_path: Path) -> None:
    changed = tmp_path / "proto"
    shutil.copytree(ROOT / "proto", changed)
    source = changed / "analytics.proto"
    source.write_text(source.read_text().replace("string user_id = 2;", "string user_id = 9;"))
    done = breaking(buf, changed)
    assert done.returncode != 0
    assert "user_id" in done.stdout


async def buf_curl(buf: Path, server: Server, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        str(buf),
        "curl",
        "--protocol",
        "grpc",
        "--http2-prior-knowledge",
        "--reflect-protocol",
        "grpc-v1",
        "--timeout",
        "10s",
        *args[:-1],
        f"http://{server.address}{args[-1]}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_buf_curl_speaks_reflection_v1(buf: Path, server: Server) -> None:
    code, out = await buf_curl(buf, server, "--list-services", "")
    assert code == 0, out
    assert set(out.split()) >= {
        "analytics.AnalyticsService",
        "telemetry.TelemetryService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    }

    code, out = await buf_curl(
        buf, server, "-d", '{"event_name": "signup"}', "/analytics.AnalyticsService/TrackEvent"
    )
    assert code == 0, out
    assert json.loads(out)["success"] is True

    # A refused call: the detail's type is named (buf prints its bytes as
    # base64 because it renders details only from types compiled into buf).
    code, out = await buf_curl(
        buf, server, "-d", '{"event_name": ""}', "/analytics.AnalyticsService/TrackEvent"
    )
    assert code != 0
    error = json.loads(out)
    assert error["code"] == "invalid_argument"
    assert [d["type"] for d in error["details"]] == ["google.rpc.BadRequest"]

    # ...and that type resolves through v1 reflection, as tools that render
    # details from reflection (grpcurl) look it up.
    code, out = await buf_curl(
        buf,
        server,
        "-d",
        '{"fileContainingSymbol": "google.rpc.BadRequest"}',
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    )
    assert code == 0, out
    (reply,) = [json.loads(doc) for doc in _json_documents(out)]
    files = {
        f.name: f
        for f in (
            descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(raw))
            for raw in reply["fileDescriptorResponse"]["fileDescriptorProto"]
        )
    }
    assert "BadRequest" in {m.name for m in files["google/rpc/error_details.proto"].message_type}


def _json_documents(text: str) -> list[str]:
    decoder = json.JSONDecoder()
    docs, index = [], 0
    text = text.strip()
    while index < len(text):
        _, end = decoder.raw_decode(text, index)
        docs.append(text[index:end])
        index = end
        while index < len(text) and text[index].isspace():
            index += 1
    return docs
