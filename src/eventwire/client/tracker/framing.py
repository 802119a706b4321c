"""Events as the tracker carries them: encoded once, framed for ``EventBatch``, batched.

An event travels as bytes already framed as field 2 of ``EventBatch`` (tag,
length, encoded ``TrackEventRequest``), so a batch is its sequence field
followed by a join of its events: nothing is parsed or encoded twice, in
memory or on disk. :class:`Runs` labels a FIFO of events with the flush epoch
each was tracked in, run-length encoded.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from eventwire.api import analytics_pb2
from eventwire.client._exceptions import EventRejectedError

__all__ = [
    "MAX_BATCH_EVENTS",
    "MAX_EVENT_BYTES",
    "Batch",
    "encode_event",
    "event_id_of",
    "frame_event",
]

MAX_BATCH_EVENTS: Final = 10_000
"""The server's limit on events per ``EventBatch``."""
MAX_EVENT_BYTES: Final = 32 * 1024
"""The server's limit on one encoded event (``analytics.proto``)."""
_EVENTS_TAG: Final = b"\x12"  # EventBatch.events: field 2, length-delimited
_SEQUENCE_TAG: Final = b"\x08"  # EventBatch.sequence: field 1, varint


def _timestamp_ms(timestamp: int | float | dt.datetime | None) -> int:
    if timestamp is None:
        return time.time_ns() // 1_000_000
    if isinstance(timestamp, dt.datetime):
        if timestamp.tzinfo is None:
            raise ValueError("timestamp datetimes must be timezone-aware")
        return int(timestamp.timestamp() * 1000)
    if isinstance(timestamp, bool) or not isinstance(timestamp, int | float):
        raise TypeError(f"timestamp must be epoch milliseconds or a datetime, got {timestamp!r}")
    return int(timestamp)


def encode_event(
    event_name: str,
    user_id: str,
    properties: Mapping[str, str] | None,
    timestamp: int | float | dt.datetime | None,
    event_id: str,
) -> bytes:
    """One ``TrackEventRequest``, encoded; wrong argument types raise ``TypeError``."""
    return analytics_pb2.TrackEventRequest(
        event_name=event_name,
        user_id=user_id,
        timestamp=_timestamp_ms(timestamp),
        properties=properties,
        event_id=event_id,
    ).SerializeToString()


def varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def frame_event(encoded: bytes) -> bytes:
    """``encoded`` (a ``TrackEventRequest``) framed as one entry of ``EventBatch.events``."""
    return _EVENTS_TAG + varint(len(encoded)) + encoded


def _unframe(item: bytes) -> bytes:
    pos = 1
    while item[pos] & 0x80:
        pos += 1
    return item[pos + 1 :]


def event_id_of(item: bytes) -> str:
    """The event_id of a framed event (parsed only on the rare paths that need it)."""
    try:
        return str(analytics_pb2.TrackEventRequest.FromString(_unframe(item)).event_id)
    except Exception:  # noqa: BLE001 - a damaged record still gets reported, without its id
        return ""


@dataclass(eq=False, slots=True)
class Batch:
    """Events sent together under one sequence number until their ack."""

    seq: int
    events: list[bytes]
    runs: list[tuple[int, int]]
    nbytes: int
    source: Any = None
    """The spool segment the events were read from; None for events from memory."""
    sent_at: float = 0.0
    sends: int = 0
    stream: int = 0
    """The stream it was last sent on (streams count from 1)."""

    def encode(self) -> bytes:
        return b"".join([_SEQUENCE_TAG, varint(self.seq), *self.events])

    def rejections(self, ack: analytics_pb2.IngestAck) -> list[EventRejectedError]:
        """The events of this batch ``ack`` refused, each with its id and violations."""
        return [
            EventRejectedError(
                r.event_id
                or (event_id_of(self.events[r.index]) if 0 <= r.index < len(self.events) else ""),
                [(v.field, v.description) for v in r.violations],
            )
            for r in ack.rejections
        ]
