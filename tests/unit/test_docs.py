"""The docs hold together: a front page README, links and paths that land, generated settings.

The settings table in docs/configuration.md is generated from
:class:`~eventwire.config.ServerConfig`; after changing a field, rewrite it with

    .venv/bin/python -m tests.unit.test_docs

and the freshness test below passes again. README's Performance section is
bench/report.py's to write (``make bench``, or ``python bench/report.py`` from
the recorded results); this test only checks that it is what that script writes.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib.util
import json
import re
import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest

from eventwire._rpc import OPERATIONS
from eventwire.config import ENV_PREFIX, ServerConfig
from eventwire.runtime.cli import build_parser
from tests.support.paths import ROOT

README: Final = ROOT / "README.md"
DOCS: Final = ROOT / "docs"
CONFIGURATION: Final = DOCS / "configuration.md"
MAX_README_LINES: Final = 400

SETTINGS_START: Final = (
    "<!-- settings: generated from ServerConfig by `.venv/bin/python -m tests.unit.test_docs` -->"
)
SETTINGS_END: Final = "<!-- settings: end -->"
SECURITY: Final = DOCS / "security.md"
OPERATIONS_START: Final = (
    "<!-- operations: generated from eventwire._rpc.OPERATIONS by"
    " `.venv/bin/python -m tests.unit.test_docs` -->"
)
OPERATIONS_END: Final = "<!-- operations: end -->"

_FENCE: Final = re.compile(r"^ {0,3}(```|~~~)")
_HEADING: Final = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_LINK: Final = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_INLINE_CODE: Final = re.compile(r"`[^`\n]*`")
_ENV_NAME: Final = re.compile(r"\bEVENTWIRE_[A-Z0-9_]*[A-Z0-9]\b")
_FLAG: Final = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
_PATHLIKE: Final = re.compile(r"[\w.\-/]+")
_FILE_SUFFIX: Final = re.compile(
    r"[\w\-]\.(py|pyi|md|toml|ya?ml|proto|json|txt|cfg|ini|sh|html|js|css|lock)$"
)
# Not in the tree: the user's own database file, a googleapis file the API
# names, the suffixes generated modules end with.
NOT_IN_REPOSITORY: Final = frozenset(
    {
        "eventwire.db",
        "./eventwire.db",
        "google/rpc/code.proto",
        "_pb2.py",
        "_pb2.pyi",
        "_pb2_grpc.py",
    }
)
# What set-up, tools and caches write: not the repository's own files.
_NOT_IN_TREE: Final = frozenset(
    {
        ".git",
        ".venv",
        ".venv-lock",
        ".tools",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".hypothesis",
        "__pycache__",
        "node_modules",
    }
)


# -- the settings table ------------------------------------------------------------


def flag_of(name: str, kind: type) -> str:
    flag = "--" + name.replace("_", "-")
    return f"`{flag}`, `--no-{flag[2:]}`" if kind is bool else f"`{flag}`"


def _default(value: object, name: str) -> str:
    if value == ():
        return "none"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, str):
        return f"`{value}`" if value else "empty"
    if isinstance(value, float):
        return f"`{value:g}`"
    if isinstance(value, int) and name.endswith("_bytes") and value >= 1 << 20:
        return f"`{value}` ({value / (1 << 20):g} MiB)"
    return f"`{value}`"


def settings_table() -> str:
    """One row per ServerConfig field: flag, variable, default and the field's own help."""
    hints = typing.get_type_hints(ServerConfig)
    rows = [
        "| flag | environment variable | default | meaning |",
        "|---|---|---|---|",
    ]
    for field in dataclasses.fields(ServerConfig):
        meaning: str = field.metadata["help"]
        choices = field.metadata.get("choices")
        if choices:
            meaning += "; one of " + ", ".join(f"`{c}`" for c in choices)
        flag = field.metadata.get("flag")
        cells = (
            f"`{flag}` (repeatable)" if flag else flag_of(field.name, hints[field.name]),
            f"`{ENV_PREFIX}{field.name.upper()}`",
            _default(field.default, field.name),
            meaning.replace("|", "\\|"),
        )
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def operations_table() -> str:
    """One row per operation of the one operations table: the docs never list them by hand."""
    rows = ["| RPC | full method | scope | gateway routes |", "|---|---|---|---|"]
    for op in OPERATIONS:
        routes = ", ".join(f"`{verb} {path}`" for verb, path in op.routes) or "(gRPC only)"
        rows.append(f"| {op.name} | `{op.method}` | `{op.scope}` | {routes} |")
    return "\n".join(rows) + "\n"


def _generated(text: str, start: str, end: str, table: str, page: str) -> str:
    head, found_start, rest = text.partition(start)
    _, found_end, tail = rest.partition(end)
    if not found_start or not found_end:
        raise ValueError(f"{page} lost its generated-section markers")
    return f"{head}{start}\n{table}{end}{tail}"


def with_settings(text: str) -> str:
    """``text`` with the part between the settings markers replaced by :func:`settings_table`."""
    return _generated(text, SETTINGS_START, SETTINGS_END, settings_table(), "docs/configuration.md")


def with_operations(text: str) -> str:
    """``text`` with its operations section replaced by :func:`operations_table`."""
    return _generated(
        text, OPERATIONS_START, OPERATIONS_END, operations_table(), "docs/security.md"
    )


# -- Markdown, as far as links and anchors need it ---------------------------------


def prose_lines(text: str) -> Iterator[str]:
    """The lines outside fenced code blocks."""
    fenced = False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield line


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    seen: dict[str, int] = {}
    found: set[str] = set()
    for line in prose_lines(text):
        match = _HEADING.match(line)
        if match is None:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(text: str) -> list[str]:
    """Link targets in prose (not in code), images included."""
    return [
        target for line in prose_lines(text) for target in _LINK.findall(_INLINE_CODE.sub("", line))
    ]


def broken_links(page: Path, text: str) -> list[str]:
    """Each relative link of ``page`` whose file, or heading, does not exist."""
    broken: list[str] = []
    for target in links(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, ...
            continue
        path, _, anchor = target.partition("#")
        destination = (page.parent / path).resolve() if path else page
        if not destination.exists():
            broken.append(f"{target}: no such file")
            continue
        if (
            anchor
            and destination.suffix == ".md"
            and anchor not in anchors(destination.read_text(encoding="utf-8"))
        ):
            broken.append(f"{target}: no heading #{anchor}")
    return broken


@functools.cache
def repository_paths() -> frozenset[str]:
    """Every file and directory of the tree, relative to the root, caches left out."""
    found: set[str] = set()
    stack = [ROOT]
    while stack:
        for entry in stack.pop().iterdir():
            if entry.name in _NOT_IN_TREE:
                continue
            found.add(entry.relative_to(ROOT).as_posix())
            if entry.is_dir():
                stack.append(entry)
    return frozenset(found)


def named_paths(text: str, top_dirs: set[str]) -> list[str]:
    """Inline-code spans in prose that name a file or a directory of the repository.

    A span counts when it ends in a source or config suffix (``x.py``,
    ``y.toml``) or has a slash and begins with one of ``top_dirs`` (``store/``);
    spans that begin with a slash are URL routes or paths on the host.
    """
    named: list[str] = []
    for line in prose_lines(text):
        for span in _INLINE_CODE.findall(line):
            token = span.strip("`").strip()
            if not _PATHLIKE.fullmatch(token) or token.startswith("/"):
                continue
            if _FILE_SUFFIX.search(token) or (
                "/" in token and token.removeprefix("./").split("/")[0] in top_dirs
            ):
                named.append(token)
    return named


def missing_paths(text: str, tree: frozenset[str]) -> list[str]:
    """Paths named in ``text`` that no file or directory of ``tree`` is or ends with.

    Docs name files from where the reader stands (``store/base.py``,
    ``tracker/spool.py``, ``test_spill.py``), so a path lands when some path of
    the tree ends with it.
    """
    top_dirs = {path.split("/")[-1] for path in tree if ROOT.joinpath(path).is_dir()}
    missing: list[str] = []
    for token in named_paths(text, top_dirs):
        path = token.removeprefix("./").rstrip("/")
        if token in NOT_IN_REPOSITORY or path in tree:
            continue
        if not any(known.endswith("/" + path) for known in tree):
            missing.append(token)
    return missing


def pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


# -- the tests ---------------------------------------------------------------------


def test_readme_is_a_front_page() -> None:
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines; move reference to docs/"


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    assert broken_links(page, page.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_path_named_in_backticks_exists(page: Path) -> None:
    assert missing_paths(page.read_text(encoding="utf-8"), repository_paths()) == []


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {
        (ROOT / target.partition("#")[0]).resolve()
        for target in links(README.read_text(encoding="utf-8"))
    }
    assert [p.name for p in DOCS.glob("*.md") if p.resolve() not in linked] == []


def test_the_settings_table_is_generated_from_server_config() -> None:
    text = CONFIGURATION.read_text(encoding="utf-8")
    assert text == with_settings(text), (
        "docs/configuration.md is stale: run .venv/bin/python -m tests.unit.test_docs"
    )


def test_the_operations_table_is_generated_from_the_rpc_table() -> None:
    text = SECURITY.read_text(encoding="utf-8")
    assert text == with_operations(text), (
        "docs/security.md is stale: run .venv/bin/python -m tests.unit.test_docs"
    )


def test_a_stale_operations_table_is_caught() -> None:
    text = SECURITY.read_text(encoding="utf-8")
    stale = text.replace("| TelemetryService.GetAlert |", "| TelemetryService.FetchAlert |")
    assert stale != text
    assert with_operations(stale) != stale


def test_every_setting_is_in_the_configuration_page() -> None:
    text = CONFIGURATION.read_text(encoding="utf-8")
    for field in dataclasses.fields(ServerConfig):
        flag = field.metadata.get("flag") or f"--{field.name.replace('_', '-')}"
        assert f"`{flag}`" in text, field.name
        assert f"`{ENV_PREFIX}{field.name.upper()}`" in text, field.name


def test_serve_command_lines_use_real_flags() -> None:
    """A flag on an ``eventwire serve`` line anywhere in the docs is one serve has."""
    hints = typing.get_type_hints(ServerConfig)
    real = {"--help"}
    for field in dataclasses.fields(ServerConfig):
        flag = field.metadata.get("flag") or "--" + field.name.replace("_", "-")
        real |= {flag, "--no-" + flag[2:]} if hints[field.name] is bool else {flag}
    wrong = [
        f"{page.name}: {flag}"
        for page in pages()
        for line in page.read_text(encoding="utf-8").splitlines()
        if "eventwire serve" in line
        for flag in _FLAG.findall(line.partition("eventwire serve")[2].partition("#")[0])
        if flag not in real
    ]
    assert wrong == []


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Every (nested) subcommand's parser by its command line, ``alerts list`` say."""
    found: dict[str, argparse.ArgumentParser] = {}
    # argparse keeps its subparsers and actions in private attributes only.
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                nested = _subcommands(child)
                found |= {f"{name} {sub}": p for sub, p in nested.items()} or {name: child}
    return found


def _long_options(parser: argparse.ArgumentParser) -> set[str]:
    return {o for a in parser._actions for o in a.option_strings if o.startswith("--")}


def test_the_cli_table_has_the_flags_every_client_command_shares() -> None:
    text = CONFIGURATION.read_text(encoding="utf-8")
    section = text.partition("## The CLI's client commands")[2].partition("\n## ")[0]
    intro, _, table = section.partition("| flag |")
    commands = set(re.findall(r"`(?:eventwire )?([a-z-]+(?: [a-z]+)?)`", intro))
    parsers = _subcommands(build_parser({}))
    assert commands <= set(parsers), commands - set(parsers)
    shared = set.intersection(*(_long_options(parsers[c]) for c in commands)) - {"--help"}
    documented = {
        flag
        for row in table.splitlines()
        if row.startswith("| `--")
        for flag in _FLAG.findall(row.split("|")[1])
    }
    assert documented == shared


def test_every_environment_variable_named_in_the_docs_exists() -> None:
    """An EVENTWIRE_* name in the docs is a setting or is read somewhere in the code or tests."""
    known = {f"{ENV_PREFIX}{field.name.upper()}" for field in dataclasses.fields(ServerConfig)}
    for tree in ("src", "tests"):
        for source in (ROOT / tree).rglob("*.py"):
            if source.resolve() != Path(__file__).resolve():
                known |= set(_ENV_NAME.findall(source.read_text(encoding="utf-8")))
    named = {
        f"{page.name}: {name}"
        for page in pages()
        for name in _ENV_NAME.findall(page.read_text(encoding="utf-8"))
        if name not in known
    }
    assert named == set()


def _bench_report() -> Any:
    spec = importlib.util.spec_from_file_location("bench_report", ROOT / "bench" / "report.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_performance_section_is_what_bench_report_writes() -> None:
    report = _bench_report()
    readme = README.read_text(encoding="utf-8")
    assert report.START in readme
    assert report.END in readme
    result = json.loads((ROOT / "bench" / "results" / "bench.json").read_text(encoding="utf-8"))
    assert report.with_performance(readme, report.performance_md(result)) == readme, (
        "README's Performance section is stale: run .venv/bin/python bench/report.py"
    )


# -- the checkers can fail -----------------------------------------------------------


def test_slugs_are_githubs() -> None:
    assert slug("Any stub: `resilient_channel`") == "any-stub-resilient_channel"
    assert slug("TLS and mTLS") == "tls-and-mtls"
    # A multiplication sign, as in the Performance section's "10\u00d7" heading, is dropped.
    assert slug('Reading the seeds\' "up to 10\u00d7 over JSON/HTTP" claim') == (
        "reading-the-seeds-up-to-10-over-jsonhttp-claim"
    )
    assert anchors("# Limits\n## Limits\n```\n# not a heading\n```\n") == {"limits", "limits-1"}


def test_a_broken_link_is_caught() -> None:
    text = (
        "[ok](api.md#limits) [file](nowhere.md) [anchor](api.md#no-such-heading)\n"
        "[web](https://example.com/x) `[code](nowhere.md)`\n"
        "```\n[fenced](nowhere.md)\n```\n"
    )
    assert broken_links(DOCS / "page.md", text) == [
        "nowhere.md: no such file",
        "api.md#no-such-heading: no heading #no-such-heading",
    ]


def test_a_renamed_path_is_caught() -> None:
    tree = repository_paths()
    text = (
        "`src/eventwire/store/base.py`, `store/base.py`, `base.py`, `store/`, `docs/api.md`,\n"
        "`store/basis.py`, `ingest/nowhere/`, `gone.py`, `docs/nowhere.md`,\n"
        "`/v1/events`, `/var/lib/eventwire`, `application/json`, `eventwire.db`,\n"
        "```\n`fenced.py`\n```\n"
    )
    assert missing_paths(text, tree) == [
        "store/basis.py",
        "ingest/nowhere/",
        "gone.py",
        "docs/nowhere.md",
    ]


def test_a_stale_settings_table_is_caught() -> None:
    text = CONFIGURATION.read_text(encoding="utf-8")
    stale = text.replace("`EVENTWIRE_GRACE`", "`EVENTWIRE_GRACE_SECONDS`")
    assert stale != text
    assert with_settings(stale) != stale


if __name__ == "__main__":
    for page, regenerate in ((CONFIGURATION, with_settings), (SECURITY, with_operations)):
        page.write_text(regenerate(page.read_text(encoding="utf-8")))
        print(f"wrote {page.relative_to(ROOT)}", file=sys.stderr)
