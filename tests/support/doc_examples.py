"""Examples out of Markdown pages, and their shown output compared with what really prints.

The docs' examples are tests: a page's fenced ``console`` and ``python`` blocks
are pulled out here, run by a test against a real server, and what they print
is compared with what the page shows. The conventions a page follows:

- A ``console`` block holds commands, each on a line starting ``$ `` (a line
  ending in ``\\`` continues on the next), followed by the output it shows.
- In a ``python`` block, a ``print(...)`` line's trailing comment is what it
  prints (``print(n)  # 1``); text after the first ``": "`` in the comment
  explains it and is not output (``# True False: committed before the reply``).
- Shown output may stand in for what differs from run to run: any UUID
  matches any UUID (so a page can show a real-looking id), ``<uuid>`` any
  UUID, ``<id>`` any run of non-blank characters, ``...`` inside a line any
  text, and a line of ``...`` alone any number of lines. Trailing blanks are
  ignored.

API (used by tests/integration/test_docs_readme.py and the client page's test):
:func:`blocks` (``Block``: language, first line number, body),
:func:`commands` (``Command``: the shell text, its shown output, its line),
:func:`printed` (a python block's shown output), :func:`output_mismatch`
(``None`` when the output matches, else a diff to fail with).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Final

_FENCE: Final = re.compile(r"^ {0,3}(```+|~~~+)\s*([\w+-]*)")
_UUID: Final = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_PLACEHOLDER: Final = re.compile(rf"<uuid>|<id>|\.\.\.|{_UUID}")
_REGEX: Final = {"<id>": r"\S+", "...": r".*?"}
"""What each placeholder but a UUID matches."""
_PRINT_COMMENT: Final = re.compile(r"^\s*print\(.*\)\s+#\s?(.*)$")
PROMPT: Final = "$ "


@dataclass(frozen=True)
class Block:
    """One fenced code block: its info string's first word, where its body starts, the body."""

    language: str
    line: int
    """1-based line number of the body's first line in the page."""
    body: str


@dataclass(frozen=True)
class Command:
    """One ``$ `` command of a console block and the output the page shows for it."""

    text: str
    """The command as a shell reads it (continuation lines kept, prompt removed)."""
    output: str
    line: int


def blocks(markdown: str) -> list[Block]:
    """The fenced code blocks of a page, in order."""
    found: list[Block] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        fence = opening.group(1)
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not lines[j].lstrip().startswith(fence):
            body.append(lines[j])
            j += 1
        found.append(Block(opening.group(2), i + 2, "\n".join(body) + "\n" if body else ""))
        i = j + 1
    return found


def commands(block: Block) -> list[Command]:
    """The commands of a console block, each with the output shown under it."""
    found: list[Command] = []
    lines = block.body.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].startswith(PROMPT):
            raise ValueError(f"line {block.line + i}: output before any {PROMPT!r} command")
        start = i
        text = [lines[i][len(PROMPT) :]]
        while text[-1].endswith("\\") and i + 1 < len(lines):
            i += 1
            text.append(lines[i])
        i += 1
        output: list[str] = []
        while i < len(lines) and not lines[i].startswith(PROMPT):
            output.append(lines[i])
            i += 1
        found.append(
            Command("\n".join(text), "\n".join(output) + "\n" if output else "", block.line + start)
        )
    return found


def printed(block: Block) -> str:
    """What a python block shows it prints: its print lines' trailing comments, in order."""
    shown = [
        match.group(1).partition(": ")[0].rstrip()
        for line in block.body.splitlines()
        if (match := _PRINT_COMMENT.match(line)) is not None
    ]
    return "\n".join(shown) + "\n" if shown else ""


def _line_pattern(line: str) -> str:
    parts: list[str] = []
    at = 0
    for match in _PLACEHOLDER.finditer(line):
        parts.append(re.escape(line[at : match.start()]))
        placeholder = match.group()
        parts.append(_REGEX.get(placeholder, _UUID))
        at = match.end()
    parts.append(re.escape(line[at:]))
    return "".join(parts)


def _normalise(text: str) -> str:
    return "".join(line.rstrip() + "\n" for line in text.splitlines())


def output_matches(shown: str, actual: str) -> bool:
    """Whether ``actual`` is what ``shown`` shows, placeholders allowed (module docstring)."""
    pattern = "".join(
        r"(?:[^\n]*\n)*?" if line.strip() == "..." else _line_pattern(line) + r"\n"
        for line in _normalise(shown).splitlines()
    )
    return re.fullmatch(pattern, _normalise(actual)) is not None


def output_mismatch(shown: str, actual: str, where: str = "") -> str | None:
    """``None`` when ``actual`` matches ``shown``, else a diff saying how they differ."""
    if output_matches(shown, actual):
        return None
    diff = difflib.unified_diff(
        _normalise(shown).splitlines(),
        _normalise(actual).splitlines(),
        "shown" + (f" ({where})" if where else ""),
        "actual",
        lineterm="",
    )
    return "\n".join(diff)
