"""Print the part of requirements.lock that eventwire needs at run time, hashes included.

The lock covers the ``dev`` extra too (mypy, pytest, ruff...), which has no
place in a production image. This keeps every locked entry reachable from the
server's dependencies (the package's own plus its ``server`` extra), following
uv's ``# via`` annotations, so the image still installs with
``pip install --require-hashes --no-deps`` from exactly the pinned, hashed
files. ``--client`` gives the client's alone (``pip install eventwire``, no
extra). Other root packages (``hatchling`` for the build stage) can be named
on the command line; then only their closure is printed.

    python deploy/runtime_requirements.py > runtime.lock
    python deploy/runtime_requirements.py --client > client.lock
    python deploy/runtime_requirements.py hatchling > build.lock

Standard library only: it runs in the bare build image before anything is installed.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_SELF = "eventwire (pyproject.toml)"


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(spec: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
    if match is None:
        raise ValueError(f"cannot read a package name from {spec!r}")
    return normalize(match.group(1))


def parse_lock(text: str) -> dict[str, tuple[list[str], set[str]]]:
    """Package name -> (its lines in the lock, the names it is required via)."""
    entries: dict[str, tuple[list[str], set[str]]] = {}
    current = ""
    in_via = False
    for line in text.splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            current = requirement_name(line)
            entries[current] = ([line], set())
            in_via = False
            continue
        if not current:
            continue
        stripped = line.strip()
        if stripped.startswith("--hash") or stripped.endswith("\\"):
            entries[current][0].append(line)
        elif stripped.startswith("# via"):
            parent = stripped.removeprefix("# via").strip()
            in_via = not parent
            if parent:
                entries[current][1].add(parent)
        elif in_via and stripped.startswith("#"):
            entries[current][1].add(stripped.lstrip("#").strip())
    return entries


def _with_extras(spec: str) -> set[str]:
    """``psycopg[binary]>=3.2`` -> {psycopg, psycopg-binary}: uv locks extras as packages."""
    name = requirement_name(spec)
    match = re.match(r"\s*[A-Za-z0-9._-]+\[([^\]]+)\]", spec)
    extras = match.group(1).split(",") if match else []
    return {name} | {normalize(f"{name}-{extra.strip()}") for extra in extras}


def closure(
    lock: str, pyproject: str, roots: list[str] | None = None, *, client: bool = False
) -> list[str]:
    """Names of the locked packages needed by ``roots`` (default: the server, or the client)."""
    entries = parse_lock(lock)
    project = tomllib.loads(pyproject)["project"]
    if roots is None:
        specs = list(project["dependencies"])
        if not client:
            specs += project.get("optional-dependencies", {}).get("server", [])
        wanted: set[str] = set().union(*(_with_extras(spec) for spec in specs))
        wanted &= entries.keys() | {requirement_name(spec) for spec in specs}
    else:
        wanted = {normalize(r) for r in roots}
    missing = wanted - entries.keys()
    if missing:
        raise ValueError(f"not in the lock: {sorted(missing)}")
    changed = True
    while changed:
        changed = False
        for name, (_, via) in entries.items():
            if name not in wanted and any(requirement_name(p) in wanted for p in via - {_SELF}):
                wanted.add(name)
                changed = True
    return sorted(wanted)


def main(argv: list[str]) -> int:
    client = "--client" in argv
    roots = [arg for arg in argv if arg != "--client"]
    lock = (ROOT / "requirements.lock").read_text()
    names = closure(lock, (ROOT / "pyproject.toml").read_text(), roots or None, client=client)
    entries = parse_lock(lock)
    for name in names:
        print("\n".join(entries[name][0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
