"""Telling the application: ``on_drop`` and ``on_error``, guarded, and spool failures once."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final

from eventwire.api import analytics_pb2
from eventwire.client._exceptions import EventwireError, SpoolError, SpoolFullError
from eventwire.client.tracker.config import DropHook, ErrorHook
from eventwire.client.tracker.state import Pipeline
from eventwire.client.tracker.stats import DroppedEvent, DropReason

__all__ = ["Reporter"]

_MAX_KINDS: Final = 1000
"""Kinds of violation remembered; beyond, new kinds are not logged (bounded memory)."""
_DID: Final = {
    analytics_pb2.OUTCOME_ACCEPTED: "accepted, with violations,",
    analytics_pb2.OUTCOME_QUARANTINED: "quarantined",
    analytics_pb2.OUTCOME_REJECTED: "rejected",
    analytics_pb2.OUTCOME_UNSPECIFIED: "flagged",
}

log = logging.getLogger("eventwire.client")


class Reporter:
    """Calls the hooks (an exception in one is logged, never raised) and keeps the
    spool's failure streak, so a full disk is reported once, not once per event."""

    def __init__(
        self, core: Pipeline, on_drop: DropHook | None, on_error: ErrorHook | None
    ) -> None:
        self._core = core
        self.on_drop = on_drop
        self.on_error = on_error
        self._failing: SpoolError | None = None
        self._violations: set[tuple[int, str, str]] = set()
        """Kinds of tracking-plan violation already logged: (outcome, field, rule)."""

    def drop(self, event_id: str, reason: str) -> None:
        """Report an event the pipeline has already counted as dropped."""
        hook = self.on_drop
        if hook is None:
            return
        try:
            hook(DroppedEvent(event_id, reason))
        except Exception:
            log.exception("eventwire tracker: on_drop hook failed")

    def error(self, exc: EventwireError) -> None:
        hook = self.on_error
        if hook is None:
            return
        try:
            hook(exc)
        except Exception:
            log.exception("eventwire tracker: on_error hook failed")

    def flagged(self, flagged: Sequence[analytics_pb2.PlannedEvent]) -> None:
        """Log the server's tracking-plan verdicts, the first of each kind only: a
        misspelt property in a hot loop is one line, not one per event."""
        for event in flagged:
            for violation in event.violations:
                rule = violation.description.rpartition("[")[2].rstrip("]")
                kind = (event.outcome, violation.field, rule)
                if kind in self._violations or len(self._violations) >= _MAX_KINDS:
                    continue
                self._violations.add(kind)
                log.warning(
                    "eventwire tracker: the tracking plan %s event %s: %s: %s "
                    "(logged once for this field and rule)",
                    _DID[event.outcome],
                    event.event_id,
                    violation.field,
                    violation.description,
                )

    def spool_failed(self, exc: SpoolError) -> None:
        self._core.count("spool_errors")
        if self._failing is None:
            log.warning("eventwire tracker: spool write failed: %s", exc)
            self.error(exc)
        self._failing = exc

    def spool_ok(self) -> None:
        self._failing = None

    @property
    def spool_drop_reason(self) -> str:
        """Why an event the spool cannot take is dropped: the last failure's kind."""
        if self._failing is None or isinstance(self._failing, SpoolFullError):
            return DropReason.SPOOL_FULL
        return DropReason.SPOOL_ERROR
