"""The buf binary for tests: from the npm registry (@bufbuild/buf ships it), pinned,
installed once into .tools/; skipped loudly where it cannot be had."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.paths import ROOT

BUF_VERSION = "1.75.0"
TOOLS = ROOT / ".tools"


@pytest.fixture(scope="session")
def buf() -> Path:
    exe = TOOLS / "node_modules" / ".bin" / "buf"
    if exe.exists():
        return exe
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("SKIPPED LOUDLY: npm is not installed, so buf cannot run")
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
