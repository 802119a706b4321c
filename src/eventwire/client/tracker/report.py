"""Telling the application: ``on_drop`` and ``on_error``, guarded, and spool failures once."""

from __future__ import annotations

import logging

from eventwire.client._exceptions import EventwireError, SpoolError, SpoolFullError
from eventwire.client.tracker.config import DropHook, ErrorHook
from eventwire.client.tracker.state import Pipeline
from eventwire.client.tracker.stats import DroppedEvent, DropReason

__all__ = ["Reporter"]

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
