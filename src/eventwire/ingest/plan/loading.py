"""Reading a plan document (YAML or JSON) into plain JSON data, with its size bounded.

A plan comes from an operator but travels over the API, so reading it must
not be a way to stall or exhaust the server: the document's size and nesting
depth are capped before anything walks it; YAML anchors, aliases and merge
keys (``<<: *common``, handy to share properties between events) are
expanded, but at most :data:`MAX_VALUES` values come out, so an alias "bomb"
(each level doubling the one before) is refused instead of expanded; and only
JSON values come out (YAML's dates, ``.inf`` and non-string keys are refused
with a hint, since a JSON Schema could not hold them).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, Final

import yaml

from eventwire.ingest.plan.model import PlanError

__all__ = ["MAX_DEPTH", "MAX_DOCUMENT_BYTES", "MAX_VALUES", "load_document", "pointer"]

MAX_DOCUMENT_BYTES: Final = 1024 * 1024
MAX_DEPTH: Final = 32
"""Containers nested deeper than this are refused; a valid plan needs about 8."""
MAX_VALUES: Final = 250_000
"""Values (scalars and containers) a YAML plan may expand to, aliases expanded.
A plan at the size limit written out in full holds about 100,000."""
_MERGE: Final = "tag:yaml.org,2002:merge"


def pointer(*parts: str | int) -> str:
    """An RFC 6901 JSON pointer to ``parts``."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


class _Loader(yaml.SafeLoader):
    """SafeLoader with a depth limit (aliases and duplicate keys: :class:`_Builder`)."""

    def __init__(self, stream: str, source: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._source = source

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
                line = event.start_mark.line + 1 if event.start_mark is not None else 0
                raise PlanError(
                    "", f"line {line}: nested deeper than {MAX_DEPTH} levels", source=self._source
                )
            return super().compose_node(parent, index)  # type: ignore[arg-type]
        finally:
            self._depth -= 1


def _text(document: str | bytes, source: str) -> str:
    if len(document) > MAX_DOCUMENT_BYTES:
        raise PlanError("", f"document is larger than {MAX_DOCUMENT_BYTES} bytes", source=source)
    if isinstance(document, bytes):
        try:
            document = document.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise PlanError("", f"not UTF-8 (byte {exc.start})", source=source) from None
    if len(document.encode()) > MAX_DOCUMENT_BYTES:
        raise PlanError("", f"document is larger than {MAX_DOCUMENT_BYTES} bytes", source=source)
    return document


def _json_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def load_document(document: str | bytes, source: str) -> Any:
    """The JSON data of ``document``; JSON if it starts with ``{``, else YAML."""
    text = _text(document, source)
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text, object_pairs_hook=_json_pairs)
        except json.JSONDecodeError as exc:
            # Maybe YAML's flow style ({events: {a: {}}}); if not, the JSON error is the useful one.
            reason = f"not valid JSON: line {exc.lineno} column {exc.colno}: {exc.msg}"
            try:
                data = _load_yaml(text, source)
            except PlanError as yaml_error:
                if not yaml_error.reason.startswith("not valid YAML"):
                    raise
                raise PlanError("", reason, source=source) from None
        except ValueError as exc:  # a duplicate key, from the hook
            raise PlanError("", f"not valid JSON: {exc}", source=source) from None
        except RecursionError:
            raise PlanError("", f"nested deeper than {MAX_DEPTH} levels", source=source) from None
    else:
        data = _load_yaml(text, source)
    _check_json(data, source, (), 0)
    return data


def _load_yaml(text: str, source: str) -> Any:
    loader = _Loader(text, source)
    try:
        node = loader.get_single_node()
        return None if node is None else _Builder(loader, source).build(node, ())
    except yaml.YAMLError as exc:
        raise PlanError("", f"not valid YAML: {_yaml_reason(exc)}", source=source) from None
    finally:
        loader.dispose()


class _Builder:
    """Plain data from a composed YAML node graph, aliases expanded within a budget.

    Also refuses what PyYAML lets through: a duplicate key (it keeps the last),
    a key that is not a string, and a recursive alias (``&a [*a]``).
    """

    def __init__(self, loader: _Loader, source: str) -> None:
        self.loader = loader
        self.source = source
        self.left = MAX_VALUES
        self.open: set[int] = set()

    def fail(self, path: tuple[str | int, ...], node: yaml.Node, reason: str) -> PlanError:
        line = node.start_mark.line + 1 if node.start_mark is not None else 0
        return PlanError(pointer(*path), f"line {line}: {reason}", source=self.source)

    def build(self, node: yaml.Node, path: tuple[str | int, ...]) -> Any:
        self.left -= 1
        if self.left < 0:
            raise self.fail(path, node, f"expands to more than {MAX_VALUES} values (YAML aliases)")
        if len(path) > MAX_DEPTH or id(node) in self.open:
            raise self.fail(path, node, f"nested deeper than {MAX_DEPTH} levels (or recursive)")
        if isinstance(node, yaml.MappingNode):
            self.open.add(id(node))
            try:
                return self.mapping(node, path)
            finally:
                self.open.discard(id(node))
        if isinstance(node, yaml.SequenceNode):
            self.open.add(id(node))
            try:
                return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
            finally:
                self.open.discard(id(node))
        return self.loader.construct_object(node, deep=True)

    def mapping(self, node: yaml.MappingNode, path: tuple[str | int, ...]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        merged: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                value = self.build(value_node, (*path, "<<"))
                for source in value if isinstance(value, list) else [value]:
                    if not isinstance(source, dict):
                        raise self.fail(path, key_node, "a merge key (<<) takes mappings only")
                    for key, item in source.items():
                        merged.setdefault(key, item)
                continue
            key = self.loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                raise self.fail(path, key_node, f"key {key!r} is not a string (quote it)")
            if key in out:
                raise self.fail((*path, key), key_node, f"duplicate key {key!r}")
            out[key] = self.build(value_node, (*path, key))
        for key, item in merged.items():  # explicit keys win over merged ones (YAML's rule)
            out.setdefault(key, item)
        return out


def _yaml_reason(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    where = f"line {mark.line + 1} column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{problem}"[:300]


def _check_json(value: Any, source: str, path: tuple[str | int, ...], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise PlanError(pointer(*path), f"nested deeper than {MAX_DEPTH} levels", source=source)
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise PlanError(pointer(*path), f"key {key!r} is not a string", source=source)
            _check_json(item, source, (*path, key), depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_json(item, source, (*path, index), depth + 1)
    elif isinstance(value, float) and not math.isfinite(value):
        raise PlanError(pointer(*path), f"{value} is not a JSON number", source=source)
    elif value is not None and not isinstance(value, (str, int, float, bool)):
        raise PlanError(
            pointer(*path),
            f"a YAML {type(value).__name__} is not a JSON value (quote it to make it a string)",
            source=source,
        )
