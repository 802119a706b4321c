"""Alert messages rendered once for every watcher with the same filter.

Many watchers of one tenant and filter receive the same message (the same
cursor too): it is built once and kept, the oldest dropped first once the kept
messages' bytes (:func:`~eventwire.reads.feed.row_bytes`) pass the cap, so the
cache stays inside the feed's memory budget.
"""

from __future__ import annotations

from collections import OrderedDict

from eventwire.api import telemetry_pb2
from eventwire.ingest.alerts import alert_message
from eventwire.reads.cursors import Cursors
from eventwire.reads.feed import row_bytes
from eventwire.store.base import Position, StoredAlert


class RenderedAlerts:
    def __init__(self, cursors: Cursors, cap: int) -> None:
        self._cursors = cursors
        self._cap = cap
        self._kept: OrderedDict[tuple[Position, str, bytes], tuple[telemetry_pb2.Alert, int]] = (
            OrderedDict()
        )
        self.bytes = 0
        """Bytes of the messages kept."""

    def get(self, stored: StoredAlert, tenant: str, bound: bytes) -> telemetry_pb2.Alert:
        """The Alert message for a watcher of ``tenant`` with the filter ``bound``."""
        key = (stored.position, tenant, bound)
        kept = self._kept.get(key)
        if kept is not None:
            return kept[0]
        message = alert_message(
            stored.row, self._cursors.encode("alert", tenant, bound, stored.position)
        )
        size = row_bytes(stored.row)
        if size <= self._cap:
            self._kept[key] = (message, size)
            self.bytes += size
            while self.bytes > self._cap:
                _, (_, dropped) = self._kept.popitem(last=False)
                self.bytes -= dropped
        return message
