"""buf's breaking-change check of proto/ against the original design's contract.

buf comes from the npm registry (the @bufbuild/buf package ships the binary),
pinned, installed once into .tools/. Where npm is missing the check is skipped
loudly; test_contract.py still compares every seed field and method.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.paths import ROOT, SEEDS

BUF_VERSION = "1.75.0"
TOOLS = ROOT / ".tools"


@pytest.fixture(scope="session")
def buf() -> Path:
    exe = TOOLS / "node_modules" / ".bin" / "buf"
    if exe.exists():
        return exe
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("SKIPPED LOUDLY: npm is not installed, so buf's breaking check cannot run")
    done = subprocess.run(
        [
            npm,
            "install",
            "--silent",
            "--no-audit",
            "--no-fund",
            "--prefix",
            str(TOOLS),
            f"@bufbuild/buf@{BUF_VERSION}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0 or not exe.exists():
        pytest.skip(f"SKIPPED LOUDLY: cannot install buf from npm: {done.stderr[-500:]}")
    return exe


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
