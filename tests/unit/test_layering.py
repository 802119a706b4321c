"""The package graph of src/eventwire is the one docs/architecture.md draws: layered, acyclic.

Every import of every module counts (function-local and TYPE_CHECKING ones too),
so a shortcut taken anywhere shows up here. Inside every package, its modules
and subpackages import one another without a cycle either (a package's
``__init__`` is one of its nodes). The checkers are tested against deliberately
bad imports, so these tests cannot pass by checking nothing.
"""

from __future__ import annotations

import ast
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Final

import pytest

from tests.support.paths import ROOT

PACKAGE: Final = ROOT / "src" / "eventwire"

# The layers, top to bottom: ``runtime → frontends → reads → ingest, security → store``
# (reads use ingest's validation rules and alert rendering; ingest never imports reads);
# ``observability`` and ``config`` are usable from every layer and import nothing
# above them; ``shared`` is the small private modules (eventwire._ids, ...).
_BASE: Final = frozenset({"config", "shared", "api"})
ALLOWED: Final[Mapping[str, frozenset[str]]] = {
    "api": frozenset(),
    "config": frozenset(),
    "shared": frozenset({"api"}),
    "observability": _BASE,
    # Pure policies (backoff, retry, breaker) shared by the client and the destinations.
    "resilience": frozenset(),
    "store": _BASE | {"observability"},
    "security": _BASE | {"observability", "store"},
    "ingest": _BASE | {"observability", "store"},
    "reads": _BASE | {"observability", "store", "ingest"},
    "destinations": _BASE | {"observability", "resilience", "store", "ingest", "reads"},
    "frontends.grpc": _BASE
    | {"observability", "store", "security", "ingest", "reads", "destinations"},
    "frontends.http": _BASE
    | {"observability", "store", "security", "ingest", "reads", "destinations"},
    "client": frozenset({"shared", "api", "observability", "resilience"}),
    "runtime": _BASE
    | {"observability", "store", "security", "ingest", "reads", "destinations"}
    | {"frontends.grpc", "frontends.http"}
    | {"client", "resilience"},
    "testing": _BASE | {"client", "resilience", "runtime", "observability", "store"},
    "root": frozenset({"client", "shared"}),
}

# Third-party packages a layer must not need: the client is installed without
# the server's dependencies, and ingest, security and store know no transport.
_SERVER_ONLY: Final = frozenset({"psycopg", "psycopg_pool", "uvicorn", "httptools", "rich"})
_TRANSPORTS: Final = frozenset({"grpc", "grpc_health", "grpc_reflection", "uvicorn", "starlette"})
FORBIDDEN_EXTERNAL: Final[Mapping[str, frozenset[str]]] = {
    "client": _SERVER_ONLY | {"orjson", "uvloop", "httpx", "opentelemetry.sdk", "grpc_status"},
    "resilience": _SERVER_ONLY | {"orjson", "uvloop", "httpx", "opentelemetry.sdk", "grpc_status"},
    "observability": _SERVER_ONLY | {"httpx"},
    "shared": _SERVER_ONLY | {"grpc"},
    "ingest": _TRANSPORTS,
    "reads": _TRANSPORTS,
    "destinations": _TRANSPORTS,
    "security": _TRANSPORTS,
    "store": _TRANSPORTS,
}


def unit_of(module: str) -> str | None:
    """The layer a dotted eventwire module belongs to; None for other packages."""
    parts = module.split(".")
    if parts[0] != "eventwire":
        return None
    if len(parts) == 1:
        return "root"
    head = parts[1]
    if head == "frontends":
        return f"frontends.{parts[2]}" if len(parts) > 2 else "frontends"
    if head in ("__init__", "__main__"):
        return "root" if head == "__init__" else "runtime"
    if head.startswith("_"):
        return "shared"
    return head.removesuffix(".py")


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(name: str, modules: Collection[str]) -> bool:
    if name in modules:
        return True
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.is_dir() or path.with_suffix(".py").is_file()


def imports_of(
    source: str, module: str, *, is_package: bool, modules: Collection[str] = ()
) -> Iterator[str]:
    """Every module ``source`` imports, absolute, with relative imports resolved.

    ``from package import name`` imports the submodule ``package.name`` when
    there is one (on disk or in ``modules``), else the package itself.
    """
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target != "eventwire" and not target.startswith("eventwire."):
                yield target
                continue
            # ``from eventwire import config`` imports the submodule eventwire.config;
            # ``from eventwire import Tracker`` imports the root package.
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                yield submodule if _is_module(submodule, modules) else target


def violations(sources: Mapping[str, tuple[str, bool]]) -> list[str]:
    """Each import that breaks the layering, as ``module -> imported (reason)``."""
    found: list[str] = []
    for module, (source, is_package) in sources.items():
        unit = unit_of(module)
        if unit is None or unit == "frontends":
            continue
        for target in imports_of(source, module, is_package=is_package):
            other = unit_of(target)
            if other is None:
                found.extend(
                    f"{module} -> {target} ({unit} must not need {banned})"
                    for banned in FORBIDDEN_EXTERNAL.get(unit, frozenset())
                    if target == banned or target.startswith(banned + ".")
                )
                continue
            if target == "eventwire" and unit != "root":
                found.append(f"{module} -> eventwire (import the module you need, not the root)")
            elif other not in (unit, "root") and other not in ALLOWED[unit]:
                found.append(f"{module} -> {target} ({unit} may not import {other})")
    return found


def package_sources() -> dict[str, tuple[str, bool]]:
    return {
        module_name(path): (path.read_text(encoding="utf-8"), path.name == "__init__.py")
        for path in sorted(PACKAGE.rglob("*.py"))
        if "api" not in path.relative_to(PACKAGE).parts[:1]
    }


def unit_graph(sources: Mapping[str, tuple[str, bool]]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, (source, is_package) in sources.items():
        unit = unit_of(module)
        if unit is None:
            continue
        edges = graph.setdefault(unit, set())
        for target in imports_of(source, module, is_package=is_package):
            other = unit_of(target)
            if other is not None and other not in (unit, "root"):
                edges.add(other)
    return graph


def cycle_in(graph: Mapping[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path, or None."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def child_of(package: str, module: str) -> str | None:
    """The direct child of ``package`` that holds ``module`` ("__init__" for the
    package itself), or None when ``module`` is outside it."""
    if module == package:
        return "__init__"
    if module.startswith(package + "."):
        return module[len(package) + 1 :].split(".", maxsplit=1)[0]
    return None


def package_graphs(sources: Mapping[str, tuple[str, bool]]) -> dict[str, dict[str, set[str]]]:
    """Per package: which of its children (modules, subpackages) import which.

    An import from deep inside a subpackage counts as one of the subpackage's,
    so a cycle that leaves a package and comes back is seen one level up.
    """
    packages = [module for module, (_, is_package) in sources.items() if is_package]
    graphs: dict[str, dict[str, set[str]]] = {package: {} for package in packages}
    for module, (source, is_package) in sources.items():
        targets = set(imports_of(source, module, is_package=is_package, modules=sources))
        for package in packages:
            child = child_of(package, module)
            if child is None:
                continue
            edges = graphs[package].setdefault(child, set())
            for target in targets:
                other = child_of(package, target)
                if other is not None and other != child:
                    edges.add(other)
    return graphs


def package_cycles(sources: Mapping[str, tuple[str, bool]]) -> list[str]:
    """One cycle of each package whose import graph has one, as ``package: a -> b -> a``."""
    return [
        f"{package}: {' -> '.join(cycle)}"
        for package, graph in sorted(package_graphs(sources).items())
        if (cycle := cycle_in(graph)) is not None
    ]


def test_every_import_respects_the_layers() -> None:
    assert violations(package_sources()) == []


def test_no_cycle_between_top_level_packages() -> None:
    assert cycle_in(unit_graph(package_sources())) is None


def test_every_package_has_a_layer() -> None:
    units = {unit_of(module) for module in package_sources()}
    assert units - {"frontends"} <= set(ALLOWED)


def test_the_allowed_graph_itself_is_acyclic() -> None:
    allowed = {unit: set(targets) for unit, targets in ALLOWED.items()}
    assert cycle_in(allowed) is None


@pytest.mark.parametrize(
    ("module", "source", "fragment"),
    [
        (
            "eventwire.client._analytics",
            "from eventwire.store import open_store",
            "client may not import store",
        ),
        ("eventwire.client._analytics", "import psycopg", "client must not need psycopg"),
        (
            "eventwire.client._core",
            "from opentelemetry.sdk.trace import TracerProvider",
            "client must not need opentelemetry.sdk",
        ),
        ("eventwire.ingest.pipeline", "import grpc", "ingest must not need grpc"),
        (
            "eventwire.frontends.grpc.servicers",
            "from eventwire.frontends.http import app",
            "frontends.grpc may not import frontends.http",
        ),
        (
            "eventwire.observability.logs",
            "from eventwire.client import Tracker",
            "observability may not import client",
        ),
        (
            "eventwire.store.sqlite.reads",
            "from ...ingest import service",
            "store may not import ingest",
        ),
    ],
)
def test_a_bad_import_is_caught(module: str, source: str, fragment: str) -> None:
    sources = package_sources()
    is_package = sources[module][1]
    sources[module] = (sources[module][0] + "\n" + source + "\n", is_package)
    assert any(fragment in v for v in violations(sources)), violations(sources)


def test_a_cycle_is_caught() -> None:
    graph = unit_graph(package_sources())
    graph.setdefault("store", set()).add("ingest")
    assert cycle_in(graph) is not None


def test_no_cycle_between_modules_inside_a_package() -> None:
    assert package_cycles(package_sources()) == []


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        # Two modules of one package importing each other.
        (
            {
                "eventwire.fake": ("", True),
                "eventwire.fake.a": ("from eventwire.fake import b\n", False),
                "eventwire.fake.b": ("from . import a\n", False),
            },
            "eventwire.fake: a -> b -> a",
        ),
        # A cycle through a subpackage, seen one level up.
        (
            {
                "eventwire.fake": ("", True),
                "eventwire.fake.a": ("from eventwire.fake.sub.c import thing\n", False),
                "eventwire.fake.sub": ("", True),
                "eventwire.fake.sub.c": ("from ..a import other\n", False),
            },
            "eventwire.fake: a -> sub -> a",
        ),
        # A module importing its own package, whose __init__ imports it.
        (
            {
                "eventwire.fake": ("from eventwire.fake.a import thing\n", True),
                "eventwire.fake.a": ("from eventwire.fake import Name\n", False),
            },
            "eventwire.fake: __init__ -> a -> __init__",
        ),
    ],
)
def test_a_cycle_inside_a_package_is_caught(
    extra: Mapping[str, tuple[str, bool]], fragment: str
) -> None:
    sources = {**package_sources(), **extra}
    assert fragment in package_cycles(sources)


def test_a_new_cycle_in_the_real_client_is_caught() -> None:
    sources = package_sources()
    module = "eventwire.client._backoff"
    cyclic = "from eventwire.client._analytics import AnalyticsClient"
    sources[module] = (sources[module][0] + "\n" + cyclic + "\n", False)
    assert package_cycles(sources) == [
        "eventwire.client: _analytics -> _base -> _core -> _backoff -> _analytics"
    ]
