"""The one place a plan's JSON Schemas meet the validation library (jsonschema-rs).

Chosen by measurement (bench/plan_validators.py, bench/notes.md). Every
validator is built here with the same options, so parsing a plan (which
compiles each schema once to refuse a broken one) and enforcing it agree:

* draft 2020-12, whatever ``$schema`` says;
* ``format`` is asserted, not just annotated, and an unknown format is an error;
* ``pattern`` uses the Rust ``regex`` engine, whose matching is linear in the
  input for every pattern, so ``(a+)+$`` cannot backtrack catastrophically;
  lookaround and backreferences (which need a backtracking engine) are refused
  when the plan is parsed, and the compiled size of each pattern is capped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import jsonschema_rs

__all__ = ["REGEX_DFA_BYTES", "REGEX_SIZE_BYTES", "SchemaProblem", "build_validator"]

REGEX_SIZE_BYTES: Final = 256 * 1024
"""Compiled size one pattern may take; ``a{1000}{1000}`` and the like exceed it."""
REGEX_DFA_BYTES: Final = 512 * 1024
"""The lazy DFA's cache per pattern: bounds memory, not correctness or linearity."""

_REGEX: Final = jsonschema_rs.RegexOptions(
    size_limit=REGEX_SIZE_BYTES, dfa_size_limit=REGEX_DFA_BYTES
)


class SchemaProblem(ValueError):
    """A schema the library refuses: ``path`` leads to the offending keyword."""

    def __init__(self, path: tuple[str | int, ...], reason: str) -> None:
        super().__init__(reason)
        self.path = path
        self.reason = reason


def build_validator(schema: Mapping[str, Any]) -> jsonschema_rs.Validator:
    """A draft 2020-12 validator for ``schema``; :class:`SchemaProblem` if it is broken."""
    try:
        return jsonschema_rs.Draft202012Validator(
            dict(schema),
            validate_formats=True,
            ignore_unknown_formats=False,
            pattern_options=_REGEX,
        )
    except jsonschema_rs.ValidationError as exc:
        path = tuple(exc.instance_path)
        if (
            isinstance(exc.kind, jsonschema_rs.ValidationErrorKind.Format)
            and exc.kind.format == "regex"
        ):
            reason = (
                "not a regular expression this server runs (it uses a linear-time engine: "
                "no lookaround, no backreferences, compiled size at most "
                f"{REGEX_SIZE_BYTES // 1024} KiB)"
            )
        else:
            reason = exc.message
        raise SchemaProblem(path, reason[:300]) from None
    except ValueError as exc:
        raise SchemaProblem((), str(exc)[:300]) from None
