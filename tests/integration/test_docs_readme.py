"""README's console and Python examples run against a real server and print what they show.

Each example block gets a fresh ``eventwire serve`` on free ports (the blocks
count what they stored, from zero). The README names the default addresses;
the test points them at its server: ``EVENTWIRE_TARGET`` for the ``eventwire``
commands (the CLI's own setting), and ``localhost:8080`` / ``localhost:50051``
replaced by the real addresses in ``curl`` lines and Python code. What counts
as shown output, and the placeholders allowed in it, is
tests/support/doc_examples.py's docstring.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

from eventwire.testing._process import ServerProcess
from tests.support.doc_examples import Block, blocks, commands, output_mismatch, printed
from tests.support.paths import ROOT

README: Final = ROOT / "README.md"
RUN: Final = ("eventwire ", "curl ")
"""Console commands that run against the test's server."""
NOT_RUN: Final = frozenset({"make run", "make test"})
"""Console commands shown but not run here: they build the environment this test runs in."""
GRPC_DEFAULT: Final = "localhost:50051"
HTTP_DEFAULT: Final = "localhost:8080"
BIN: Final = Path(sys.executable).parent


def readme_blocks(language: str) -> list[Block]:
    return [b for b in blocks(README.read_text(encoding="utf-8")) if b.language == language]


def first_word_pair(command: str) -> str:
    return " ".join(command.split()[:2])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    with ServerProcess("--store", f"sqlite:///{tmp_path / 'events.db'}") as proc:
        yield proc


def run(command: str, server: ServerProcess, cwd: Path) -> str:
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "EVENTWIRE_TARGET": server.address,
    }
    done = subprocess.run(
        ["bash", "-c", command.replace(HTTP_DEFAULT, server.http_address)],  # noqa: S607
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        # The README shows a terminal: both streams, in the order written.
        stderr=subprocess.STDOUT,
        text=True,
        timeout=60,
        check=False,
    )
    return done.stdout


def test_every_console_block_is_run_or_named_as_not_run() -> None:
    consoles = readme_blocks("console")
    assert consoles, "README.md has no console examples"
    for block in consoles:
        texts = [c.text for c in commands(block)]
        assert all(t.startswith(RUN) for t in texts) or all(
            first_word_pair(t) in NOT_RUN for t in texts
        ), f"README.md line {block.line}: a console block mixes commands run and not run"


@pytest.mark.parametrize(
    "block",
    [b for b in readme_blocks("console") if all(c.text.startswith(RUN) for c in commands(b))],
    ids=lambda b: f"line-{b.line}",
)
def test_console_example_prints_what_it_shows(
    block: Block, server: ServerProcess, tmp_path: Path
) -> None:
    for command in commands(block):
        actual = run(command.text, server, tmp_path)
        mismatch = output_mismatch(command.output, actual, f"README.md line {command.line}")
        assert mismatch is None, f"$ {command.text}\n{mismatch}"


@pytest.mark.parametrize("block", readme_blocks("python"), ids=lambda b: f"line-{b.line}")
def test_python_example_prints_what_it_shows(
    block: Block, server: ServerProcess, tmp_path: Path
) -> None:
    shown = printed(block)
    assert shown, f"README.md line {block.line}: a Python example that shows no output"
    done = subprocess.run(
        [sys.executable, "-c", block.body.replace(GRPC_DEFAULT, server.address)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    mismatch = output_mismatch(shown, done.stdout, f"README.md line {block.line}")
    assert mismatch is None, mismatch
