"""``diff_plans``: what changes between two plans, one line per change, for ``plans diff``.

Compares the normalised documents (:meth:`PlanSpec.canonical_json`'s data),
so formatting and defaults written out or left implicit make no difference.
Lines are sorted by where they point, each starting with ``+`` (added),
``-`` (removed) or ``~`` (changed), followed by a dotted path:

    ~ policies.violations: 'accept' -> 'quarantine'
    + events.page_view
    ~ events.signup.properties.properties.plan.enum: ['free', 'pro'] -> ['free', 'pro', 'team']
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

from eventwire.ingest.plan.model import PlanSpec

__all__ = ["diff_plans"]

_MAX_SHOWN: Final = 120


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _path(parts: tuple[str, ...]) -> str:
    return ".".join(p if p and "." not in p and " " not in p else repr(p) for p in parts)


def _walk(old: Any, new: Any, parts: tuple[str, ...]) -> Iterator[str]:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted(old.keys() | new.keys()):
            here = (*parts, key)
            if key not in new:
                yield f"- {_path(here)}"
            elif key not in old:
                yield f"+ {_path(here)}"
            else:
                yield from _walk(old[key], new[key], here)
    elif old != new or type(old) is not type(new):
        yield f"~ {_path(parts)}: {_shown(old)} -> {_shown(new)}"


def diff_plans(old: PlanSpec | None, new: PlanSpec) -> list[str]:
    """The changes from ``old`` (None: no plan in force) to ``new``; empty when they agree."""
    if old is None:
        names = [f"+ events.{_path((n,))}" for n in sorted(new.events)]
        alerts = [f"+ alerts.{_path((n,))}" for n in sorted(new.alerts or {})]
        policies = new.policies
        head = f"+ plan {new.name!r}" if new.name else "+ plan"
        return [
            head,
            f"  policies: unplanned={policies.unplanned}, violations={policies.violations}",
            *names,
            *alerts,
        ]
    return list(_walk(old.document, new.document, ()))
