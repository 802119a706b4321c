"""docs/client.md's examples run, against a real server, and print what the page shows.

Every fenced ``python`` block is one example. It runs as a script in its own
process and directory, against a fresh server on an ephemeral port (the page's
``localhost:50051`` becomes that server's address, and back again in what the
example prints). What it must print:

* the bare fenced block right after it, when there is one: its stdout, line
  for line (only the ``*_created`` timestamps of Prometheus counters vary);
* else the ``# comment`` ending each ``print(`` line, in that order (other
  lines may come between, from prints the page does not annotate).

An HTML comment on the line before the fence changes how it runs:
``<!-- docs-test: fragment -->`` compiles the block without running it (code
that needs a context the page does not build, such as a servicer);
``<!-- docs-test: until-output -->`` stops an example that runs until
interrupted once everything it must print has been printed. A block that
defines ``async def test_...`` functions gets them run, as pytest would.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

from eventwire.testing import running_server
from tests.support.paths import ROOT

PAGE: Final = ROOT / "docs" / "client.md"
PAGE_TARGET: Final = "localhost:50051"
DEADLINE: Final = 60.0
"""Seconds an example may take: a generous bound on a loaded machine."""

_FENCE = re.compile(r"^```(\w*)\s*$")
_DIRECTIVE = re.compile(r"^<!-- docs-test: ([\w-]+) -->$")
_CREATED = re.compile(r"^(\w+_created\{.*\}) \S+$")
_RUN_TESTS = """

import asyncio as _asyncio
import inspect as _inspect

for _name, _function in list(globals().items()):
    if _name.startswith("test_") and _inspect.iscoroutinefunction(_function):
        _asyncio.run(_function())
"""


@dataclass(frozen=True)
class Example:
    line: int
    """Where the block starts on the page (1-based), to name it."""
    code: str
    mode: str
    """"run", "fragment" or "until-output"."""
    output: list[str] | None
    """The bare block shown after it, if any."""
    annotated: list[str]
    """The ``# comments`` of its print lines."""


def examples(text: str) -> list[Example]:
    """The page's python blocks, with how to run each and what it must print."""
    lines = text.splitlines()
    found: list[Example] = []
    blocks: list[tuple[int, str, list[str]]] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if match is None:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        blocks.append((i, match.group(1), lines[i + 1 : end]))
        i = end + 1
    for n, (start, language, body) in enumerate(blocks):
        if language != "python":
            continue
        before = next((line for line in reversed(lines[:start]) if line.strip()), "")
        directive = _DIRECTIVE.match(before)
        mode = directive.group(1) if directive else "run"
        output = None
        if n + 1 < len(blocks) and blocks[n + 1][1] == "":
            following = blocks[n + 1][0]
            between = lines[start + len(body) + 2 : following]
            if not any(line.strip() for line in between):
                output = blocks[n + 1][2]
        annotated = [
            line.split("  # ", 1)[1].strip() for line in body if "print(" in line and "  # " in line
        ]
        found.append(Example(start + 1, "\n".join(body) + "\n", mode, output, annotated))
    return found


EXAMPLES: Final = examples(PAGE.read_text(encoding="utf-8"))


def _normal(line: str) -> str:
    return _CREATED.sub(r"\1 <timestamp>", line.rstrip())


def _shows(printed: list[str], expected: list[str]) -> bool:
    """``expected`` appears in ``printed`` in order, maybe with other lines between."""
    rest = iter(printed)
    return all(any(line == want for line in rest) for want in expected)


def test_the_page_has_examples_and_shown_output() -> None:
    # The parser itself: a page whose blocks it missed would test nothing.
    assert len(EXAMPLES) >= 8
    assert sum(e.output is not None for e in EXAMPLES) >= 3
    assert sum(bool(e.annotated) for e in EXAMPLES) >= 3


def test_a_changed_output_is_caught() -> None:
    page = "```python\nprint(1 + 1)  # 2\n```\n\n```\n2\n```\n"
    (example,) = examples(page)
    assert example.output == ["2"]
    assert example.annotated == ["2"]
    assert _shows(["2"], example.annotated)
    assert not _shows(["3"], example.annotated)
    assert not _shows(["2"], ["2", "2"])


async def _run(example: Example, code: str, workdir: Path, address: str) -> tuple[list[str], str]:
    script = workdir / "example.py"
    script.write_text(code, encoding="utf-8")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    printed: list[str] = []

    async def read() -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            printed.append(_normal(raw.decode().replace(address, PAGE_TARGET)))
            if example.mode == "until-output" and _shows(printed, example.annotated):
                proc.kill()
                return

    errors = asyncio.ensure_future(proc.stderr.read())
    try:
        await asyncio.wait_for(read(), DEADLINE)
        code_ = await asyncio.wait_for(proc.wait(), DEADLINE)
    except TimeoutError:
        pytest.fail(f"line {example.line}: still running after {DEADLINE:g}s; printed {printed}")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    stderr = (await errors).decode()
    if example.mode != "until-output":
        assert code_ == 0, f"line {example.line}: exit {code_}\n{stderr}"
    return printed, stderr


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"line-{e.line}" for e in EXAMPLES])
async def test_example(example: Example, tmp_path: Path) -> None:
    if example.mode == "fragment":
        compile(example.code, f"docs/client.md:{example.line}", "exec")
        return
    assert example.mode in ("run", "until-output"), example.mode
    async with running_server() as server:
        code = example.code.replace(PAGE_TARGET, server.address)
        if "async def test_" in code:
            code += _RUN_TESTS
        printed, stderr = await _run(example, code, tmp_path, server.address)
    assert "Traceback" not in stderr, stderr
    if example.output is not None:
        assert printed == [_normal(line) for line in example.output]
    assert _shows(printed, example.annotated), (printed, example.annotated)
