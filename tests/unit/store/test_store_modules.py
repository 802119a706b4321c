"""The stores' packages: public names where they always were, small modules, no cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.paths import ROOT

STORE = ROOT / "src" / "eventwire" / "store"


def test_the_public_names_stay_importable_from_the_packages() -> None:
    from eventwire.store.postgres import (
        PostgresStore,
        WriteMethod,
        alert_page_query,
        event_page_query,
    )
    from eventwire.store.sqlite import DatabaseLock, SQLiteStore

    assert PostgresStore.__module__ == "eventwire.store.postgres.store"
    assert SQLiteStore.__module__ == "eventwire.store.sqlite.store"
    assert callable(alert_page_query)
    assert callable(event_page_query)
    assert DatabaseLock.__name__ == "DatabaseLock"
    assert WriteMethod is not None


@pytest.mark.parametrize("path", sorted(STORE.rglob("*.py")), ids=lambda p: p.name)
def test_no_store_module_is_above_400_lines(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= 400


def imports_within(package: str) -> dict[str, set[str]]:
    """Which modules of ``eventwire.store.<package>`` each of them imports."""
    graph: dict[str, set[str]] = {}
    for path in (STORE / package).glob("*.py"):
        name = path.stem
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                prefix = f"eventwire.store.{package}."
                if node.module.startswith(prefix):
                    targets.add(node.module.removeprefix(prefix))
        graph[name] = targets
    return graph


def has_cycle(graph: dict[str, set[str]]) -> bool:
    done: set[str] = set()

    def visit(node: str, path: tuple[str, ...]) -> bool:
        if node in path:
            return True
        if node in done:
            return False
        found = any(visit(nxt, (*path, node)) for nxt in graph.get(node, ()))
        done.add(node)
        return found

    return any(visit(node, ()) for node in graph)


@pytest.mark.parametrize("package", ["sqlite", "postgres"])
def test_no_import_cycle_inside_a_store_package(package: str) -> None:
    graph = imports_within(package)
    assert {"connection", "reads", "writes", "store"} <= set(graph)
    # Only the package's front door imports the assembled store.
    assert not any("__init__" in targets for targets in graph.values())
    assert not has_cycle(graph)


def test_the_cycle_check_finds_a_cycle() -> None:
    graph = imports_within("sqlite")
    graph["connection"].add("writes")  # writes imports connection already
    assert has_cycle(graph)
