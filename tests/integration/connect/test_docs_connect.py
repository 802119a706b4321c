"""docs/connect.md's examples run against a real server and print what the page shows.

One ``eventwire serve`` for the whole page, its blocks in page order (the curl
block counts what the buf curl block stored). ``buf`` is the pinned binary
(tests/support/buf.py), ``localhost:8080`` the server's HTTP address; what
counts as shown output is tests/support/doc_examples.py's docstring.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Final

from eventwire.testing._process import ServerProcess
from tests.support.doc_examples import blocks, commands, output_mismatch, printed
from tests.support.paths import ROOT

PAGE: Final = ROOT / "docs" / "connect.md"
HTTP_DEFAULT: Final = "localhost:8080"


def test_every_example_prints_what_the_page_shows(buf: Path, tmp_path: Path) -> None:
    page = blocks(PAGE.read_text(encoding="utf-8"))
    consoles = [b for b in page if b.language == "console"]
    pythons = [b for b in page if b.language == "python"]
    assert consoles
    assert pythons
    with ServerProcess("--store", f"sqlite:///{tmp_path / 'events.db'}") as server:
        for block in consoles:
            for command in commands(block):
                assert command.text.startswith(("buf ", "curl ")), command.text
                text = command.text.replace(HTTP_DEFAULT, server.http_address)
                text = text.replace("buf ", f"{buf} ", 1)
                done = subprocess.run(
                    ["bash", "-c", text],  # noqa: S607
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    timeout=60,
                    check=False,
                    env={**os.environ},
                )
                where = f"docs/connect.md line {command.line}"
                mismatch = output_mismatch(command.output, done.stdout, where)
                assert mismatch is None, f"$ {command.text}\n{mismatch}"
        for block in pythons:
            done = subprocess.run(
                [sys.executable, "-c", block.body.replace(HTTP_DEFAULT, server.http_address)],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            mismatch = output_mismatch(printed(block), done.stdout, f"docs/connect.md {block.line}")
            assert mismatch is None, mismatch
            # connectrpc's client runs on pyqwest (Rust); with grpcio loaded in the same
            # interpreter, about 1 exit in 20 aborts after main() has returned and printed
            # everything (docs/connect.md says so). Anything else is a failure.
            assert done.returncode in (0, -signal.SIGABRT), done.stderr
