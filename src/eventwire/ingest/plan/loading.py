"""Reading a plan document (YAML or JSON) into plain JSON data, with its size bounded.

A plan comes from an operator but travels over the API, so reading it must
not be a way to stall or exhaust the server: the document's size and nesting
depth are capped before anything walks it, YAML anchors and aliases are
refused (an alias "bomb" expands exponentially when walked), and only JSON
values come out (YAML's dates, ``.inf`` and non-string keys are refused with a
hint, since a JSON Schema could not hold them).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, Final

import yaml

from eventwire.ingest.plan.model import PlanError

__all__ = ["MAX_DEPTH", "MAX_DOCUMENT_BYTES", "load_document", "pointer"]

MAX_DOCUMENT_BYTES: Final = 1024 * 1024
MAX_DEPTH: Final = 32
"""Containers nested deeper than this are refused; a valid plan needs about 8."""


def pointer(*parts: str | int) -> str:
    """An RFC 6901 JSON pointer to ``parts``."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


class _Loader(yaml.SafeLoader):
    """SafeLoader without aliases, with a depth limit and no duplicate keys."""

    def __init__(self, stream: str, source: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._source = source

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
        line = event.start_mark.line + 1 if event.start_mark is not None else 0
        if isinstance(event, yaml.AliasEvent):
            raise PlanError(
                "", f"line {line}: YAML aliases (*name) are not allowed", source=self._source
            )
        if isinstance(event, yaml.NodeEvent) and event.anchor is not None:
            raise PlanError(
                "", f"line {line}: YAML anchors (&name) are not allowed", source=self._source
            )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
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
        return None if node is None else _construct(loader, node, source, ())
    except yaml.YAMLError as exc:
        raise PlanError("", f"not valid YAML: {_yaml_reason(exc)}", source=source) from None
    finally:
        loader.dispose()


def _construct(loader: _Loader, node: yaml.Node, source: str, path: tuple[str | int, ...]) -> Any:
    """Build plain data from ``node``, refusing duplicate mapping keys (PyYAML keeps the last)."""
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if isinstance(key, str) and key in out:
                raise PlanError(
                    pointer(*path, key),
                    f"line {key_node.start_mark.line + 1}: duplicate key {key!r}",
                    source=source,
                )
            if not isinstance(key, str):
                raise PlanError(
                    pointer(*path),
                    f"line {key_node.start_mark.line + 1}: key {key!r} is not a string (quote it)",
                    source=source,
                )
            out[key] = _construct(loader, value_node, source, (*path, key))
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _construct(loader, item, source, (*path, index))
            for index, item in enumerate(node.value)
        ]
    return loader.construct_object(node, deep=True)


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
