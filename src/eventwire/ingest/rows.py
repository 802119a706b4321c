"""An event request as a row: the quick path for events that are certainly valid.

:func:`fast_rows` and :func:`fast_row` are what make a batch cheap (see their
docstrings); :func:`row` is the plain conversion after the full validator
accepted an event.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from typing import Final, NamedTuple

import orjson

from eventwire._errors import FieldViolation
from eventwire._ids import uuid7
from eventwire.api import analytics_pb2
from eventwire.ingest.validation import (
    MIN_TIMESTAMP_MS,
    Limits,
    latest_timestamp_ms,
    timestamp_ms,
    validate_event,
)
from eventwire.store.base import EventRow, EventValues

_PRINTABLE_ASCII: Final = bytes(range(0x20, 0x7F))


def _printable(text: str) -> bool:
    """``text.isprintable()``, ~6x faster on ASCII text (an O(1) flag in CPython):
    deleting the printable bytes leaves nothing. It runs over a whole batch's names."""
    if text.isascii():
        return not text.encode().translate(None, _PRINTABLE_ASCII)
    return text.isprintable()


def row(
    req: analytics_pb2.TrackEventRequest, tenant: str, received: int, props: dict[str, str]
) -> EventRow:
    return EventRow(
        tenant,
        req.event_id or uuid7(),
        req.event_name,
        req.user_id,
        timestamp_ms(req.timestamp) if req.timestamp else received,
        received,
        orjson.dumps(props).decode() if props else "{}",
    )


def fast_row(
    req: analytics_pb2.TrackEventRequest,
    tenant: str,
    received: int,
    limits: Limits,
    latest: int = 0,
    *,
    plan_version: int = 0,
    props_out: list[dict[str, str]] | None = None,
) -> EventValues | None:
    """The row of an event that is certainly valid, else None (ask the validator).

    A plain tuple, not an :class:`EventRow` (see :data:`EventValues`).

    ``latest``: :func:`latest_timestamp_ms` of ``received``, when the caller
    computed it once for a whole batch.

    Conservative by construction: every test here is at least as strict as
    :func:`validate_event`'s (``isprintable`` rejects a superset of the
    invisible characters; the size bound over-estimates the encoding), so a row
    returned here is one the validator accepts. The timestamp is normalised by
    the same :func:`timestamp_ms` as everywhere else. The point is the properties map: reading
    a protobuf map costs about 1 µs per event, and this reads it once, for the
    checks and the JSON together, where validate-then-convert read it twice.
    """
    name = req.event_name
    user = req.user_id
    event_id = req.event_id
    timestamp = req.timestamp
    if timestamp:
        latest = latest or latest_timestamp_ms(received, limits.max_future_ms)
        if not MIN_TIMESTAMP_MS <= timestamp <= latest:  # milliseconds need no normalising
            timestamp = timestamp_ms(timestamp)
            if not MIN_TIMESTAMP_MS <= timestamp <= latest:
                return None
    else:
        timestamp = received
    max_name = limits.max_name_chars
    if not (
        name
        and len(name) <= max_name
        and name.isprintable()
        and not name.isspace()
        and (not user or (len(user) <= max_name and user.isprintable() and not user.isspace()))
        and (
            not event_id
            or (
                len(event_id) <= limits.max_id_chars
                and event_id.isascii()
                and event_id.isprintable()
                and " " not in event_id
            )
        )
    ):
        return None
    chars = len(name) + len(user) + len(event_id)
    # Not dict(): upb's map feeds it through Python's KeysView and a lookup per
    # key (~1.3 us for three properties); a comprehension over the map is ~0.6.
    properties = req.properties
    props = {key: properties[key] for key in properties}
    if props_out is not None:
        # A tracking plan checks the same map: reading it once more would cost
        # as much again (docs/tracking-plans.md, bench/plans.py).
        props_out.append(props)
    if props:
        keys = "".join(props)
        values = "".join(props.values())
        # Per-key and per-value lengths only matter when the totals could exceed them.
        if (
            len(props) > limits.max_properties
            or "" in props
            or not keys.isprintable()
            or "\x00" in values
            or (len(keys) > max_name and max(map(len, props)) > max_name)
            or (
                len(values) > limits.max_value_chars
                and max(map(len, props.values())) > limits.max_value_chars
            )
        ):
            return None
        chars += len(keys) + len(values)
    # UTF-8 takes at most 4 bytes a character; 16 bytes a field more than covers
    # tags and lengths. Only an event near the limit pays for the exact size.
    if 4 * chars + 16 * (len(props) + 5) > limits.max_event_bytes and (
        req.ByteSize() > limits.max_event_bytes
    ):
        return None
    return (
        tenant,
        event_id or uuid7(),
        name,
        user,
        timestamp,
        received,
        orjson.dumps(props).decode() if props else "{}",
        plan_version,
        "",
    )


def properties_of(req: analytics_pb2.TrackEventRequest) -> dict[str, str]:
    properties = req.properties
    return {key: properties[key] for key in properties}


def fast_rows(
    reqs: Sequence[analytics_pb2.TrackEventRequest],
    tenant: str,
    received: int,
    limits: Limits,
    latest: int,
    *,
    plan_version: int = 0,
    maps: list[dict[str, str]] | None = None,
) -> list[EventValues] | None:
    """Every event's row when the whole batch is certainly valid, else None (then
    :func:`fast_row`, event by event).

    :func:`fast_row`'s checks, made once over each column of the batch (all the
    names, all the ids, all the property keys...) by C loops (``str.join``,
    ``str.isprintable``, ``max(map(len, ...))``) instead of once per event in
    bytecode: the loop below is only what every event needs read and built.
    Conservative like :func:`fast_row`; one doubtful event sends the whole batch
    there, so a batch with an invalid event costs what it did before.
    ``maps``: filled with each event's properties (a tracking plan checks them).
    """
    dumps = orjson.dumps
    rows: list[EventValues] = []
    keep = rows.append
    if maps is None:
        maps = []
    held = maps.append
    for req in reqs:
        properties = req.properties
        props = {key: properties[key] for key in properties}
        held(props)
        keep(
            (
                tenant,
                req.event_id or uuid7(),
                req.event_name,
                req.user_id,
                req.timestamp or received,
                received,
                dumps(props).decode() if props else "{}",
                plan_version,
                "",
            )
        )
    if not rows:
        return rows
    _, ids, names, users, stamps, _, documents, _, _ = zip(*rows, strict=True)
    # Milliseconds only: other units are normalised by fast_row.
    if min(stamps) < MIN_TIMESTAMP_MS or max(stamps) > latest:
        return None
    max_name = limits.max_name_chars
    text = "".join(names)
    user_text = "".join(users)
    id_text = "".join(ids)
    # A printable text's only white space is " " (U+0020), so names made only of
    # white space are looked for only when a space occurs at all.
    if not (
        all(names)
        and max(map(len, names)) <= max_name
        and _printable(text)
        and not (" " in text and any(map(str.isspace, names)))
        and max(map(len, users)) <= max_name
        and _printable(user_text)
        and not (" " in user_text and any(map(str.isspace, users)))
        and max(map(len, ids)) <= limits.max_id_chars
        and id_text.isascii()
        and _printable(id_text)
        and " " not in id_text
    ):
        return None
    most = max(map(len, maps))
    longest = max(map(len, documents))
    if most and _doubtful_properties(maps, documents, most, longest, limits):
        return None
    # fast_row's size bound for the largest of each field at once (the JSON of a
    # map is at least as long as its keys and values together).
    widest = max(map(len, names)) + max(map(len, users)) + max(map(len, ids))
    if 4 * (widest + longest) + 16 * (most + 5) > limits.max_event_bytes:
        return None
    return rows


def _doubtful_properties(
    maps: list[dict[str, str]],
    documents: Sequence[str],
    most: int,
    longest: int,
    limits: Limits,
) -> bool:
    """:func:`fast_row`'s property checks over a whole batch's maps (``most``: the
    most properties an event has; ``longest``: the longest map's JSON)."""
    keys = list(chain.from_iterable(maps))
    if (
        most > limits.max_properties
        or "" in keys
        or not _printable("".join(keys))
        # orjson escapes a NUL as \u0000; a text \u0000 is written \\u0000,
        # which this finds too: a doubt, not an error.
        or "\\u0000" in "".join(documents)
    ):
        return True
    # A map's JSON is longer than any of its keys or values: only a long one
    # needs them measured.
    if longest <= limits.max_name_chars and longest <= limits.max_value_chars:
        return False
    values = chain.from_iterable(map(dict.values, maps))
    return max(map(len, keys)) > limits.max_name_chars or (
        max(map(len, values)) > limits.max_value_chars
    )


class OneByOne(NamedTuple):
    rows: list[EventValues]
    positions: list[int]
    """The batch position of each row."""
    invalid: list[tuple[int, list[FieldViolation]]]
    """The invalid events' positions and violations, in batch order."""


def rows_one_by_one(
    reqs: Sequence[analytics_pb2.TrackEventRequest],
    tenant: str,
    received: int,
    limits: Limits,
    latest: int,
    *,
    prefix: str,
    plan_version: int = 0,
    maps: list[dict[str, str]] | None = None,
) -> OneByOne:
    """A batch :func:`fast_rows` doubted, event by event: :func:`fast_row`, and the
    full validator for an event it doubts (violation paths ``{prefix}[{index}].``).
    ``maps``: filled with each row's properties."""
    out = OneByOne([], [], [])
    for index, req in enumerate(reqs):
        values = fast_row(
            req, tenant, received, limits, latest, plan_version=plan_version, props_out=maps
        )
        if values is None:
            if maps is not None:
                del maps[len(out.rows) :]  # the map of an event fast_row doubted, if it kept it
            violations = validate_event(req, received, limits, f"{prefix}[{index}].")
            if violations:
                out.invalid.append((index, violations))
                continue
            props = properties_of(req)
            if maps is not None:
                maps.append(props)
            values = row(req, tenant, received, props)._replace(plan_version=plan_version)
        out.rows.append(values)
        out.positions.append(index)
    return out
