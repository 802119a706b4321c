"""Stored rows as the items a destination receives: key, name, payload, position.

The payload is the row's JSON as the gateway returns it (:mod:`eventwire.reads.render`);
a destination filtered to some event names or alert types gets only those.
"""

from __future__ import annotations

from collections.abc import Sequence

from eventwire.destinations.sink import Item
from eventwire.reads.render import alert_json, event_json
from eventwire.store.base import StoredAlert, StoredEvent


def event_items(rows: Sequence[StoredEvent], names: frozenset[str]) -> list[Item]:
    """``rows`` as items, only those named in ``names`` when it is not empty."""
    return [
        Item("event", s.position.seq, s.row.tenant, s.row.event_id, s.row.event_name,
             event_json(s.row), s.row.received_at, s.position.xid)
        for s in rows
        if not names or s.row.event_name in names
    ]  # fmt: skip


def alert_items(rows: Sequence[StoredAlert], types: frozenset[str]) -> list[Item]:
    """``rows`` as items, only those of ``types`` when it is not empty."""
    return [
        Item("alert", s.position.seq, s.row.tenant, s.row.tracking_id, s.row.alert_type,
             alert_json(s.row), s.row.received_at, s.position.xid)
        for s in rows
        if not types or s.row.alert_type in types
    ]  # fmt: skip
