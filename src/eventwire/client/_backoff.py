"""Backoff maths and the testing switch: defined in :mod:`eventwire.resilience.backoff`,
shared with the destinations' relays."""

from __future__ import annotations

from eventwire.resilience.backoff import (
    backoff,
    backoff_ceiling,
    is_testing,
    no_backoff,
    set_testing,
)

__all__ = ["backoff", "backoff_ceiling", "is_testing", "no_backoff", "set_testing"]
