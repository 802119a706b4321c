"""A row rendered for destinations is the gateway's JSON for it, cursor aside."""

from __future__ import annotations

import orjson
import pytest
from google.protobuf import json_format

from eventwire.api import analytics_pb2
from eventwire.ingest.alerts import alert_message
from eventwire.reads.render import alert_json, event_json
from eventwire.store.base import AlertRow, EventRow


def gateway(message: object) -> dict[str, object]:
    # What frontends/http/reads.py sends: every field printed, defaults included.
    shown = json_format.MessageToDict(message, always_print_fields_with_no_presence=True)  # type: ignore[arg-type]
    shown.pop("cursor")
    return shown


@pytest.mark.parametrize(
    "row",
    [
        EventRow("", "e1", "signup", "u1", 1_700_000_000_000, 1_700_000_000_001, "{}"),
        EventRow("acme", "é/2", "a.b", "", 5, 6, '{"plan": "pro", "emoji": "\\u263a"}'),
    ],
)
def test_event_json_is_the_exported_event_without_cursor(row: EventRow) -> None:
    exported = analytics_pb2.ExportedEvent(
        event=analytics_pb2.TrackEventRequest(
            event_name=row.event_name,
            user_id=row.user_id,
            timestamp=row.timestamp,
            properties=orjson.loads(row.properties),
            event_id=row.event_id,
        ),
        received_at=row.received_at,
    )
    assert orjson.loads(event_json(row)) == gateway(exported)


@pytest.mark.parametrize(
    "row",
    [
        AlertRow("t1", "", "dev", "overheat", 1, 2, None),
        AlertRow("t2", "acme", "d", "x", 3, 4, "k", 3, "hot", '{"zone": "b"}'),
        AlertRow("t3", "acme", "d", "x", 3, 4, "k", 0, "", "{}"),
    ],
)
def test_alert_json_is_the_alert_without_cursor(row: AlertRow) -> None:
    assert orjson.loads(alert_json(row)) == gateway(alert_message(row))
