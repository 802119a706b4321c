"""Cursors are bound to tenant, filter and purpose; read requests are checked field by field."""

from __future__ import annotations

import base64
from collections.abc import Sequence

import pytest

from eventwire._errors import FieldViolation, InvalidArgument
from eventwire.api import analytics_pb2, telemetry_pb2
from eventwire.config import ServerConfig, parse_duration
from eventwire.ingest.alerts import validate_alert_details
from eventwire.reads.checks import (
    validate_export,
    validate_list_alerts,
    validate_query,
    validate_watch_alerts,
)
from eventwire.reads.cursors import Cursors, fingerprint
from eventwire.reads.feed import (
    CATCH_UP_BYTES,
    CATCH_UP_PAGE,
    SLICE_BYTES,
    AlertFeed,
    page_limit,
    row_bytes,
)
from eventwire.store import AlertRow, Position, StoredAlert

KEY = b"k" * 32
BOUND = fingerprint("dev-1", "", 0)


def test_a_cursor_round_trips_only_where_it_was_issued() -> None:
    cursors = Cursors(KEY)
    token = cursors.encode("alert", "acme", BOUND, Position(2**40, 7))
    assert cursors.decode("alert", "acme", BOUND, token, "after") == Position(2**40, 7)
    refused = [
        ("alert", "globex", BOUND),  # another tenant
        ("alert", "acme", fingerprint("dev-2", "", 0)),  # another filter
        ("page", "acme", BOUND),  # a cursor is no page token
    ]
    for purpose, tenant, bound in refused:
        with pytest.raises(InvalidArgument) as info:
            cursors.decode(purpose, tenant, bound, token, "after")
        assert info.value.violations[0].field == "after"
    with pytest.raises(InvalidArgument):
        Cursors(b"x" * 32).decode("alert", "acme", BOUND, token, "after")


@pytest.mark.parametrize("mangle", ["", "not base64!", "AAAA", "x" * 44, "flip"])
def test_a_malformed_or_tampered_cursor_names_the_field(mangle: str) -> None:
    cursors = Cursors(KEY)
    token = cursors.encode("event", "", BOUND, Position(0, 41))
    if mangle == "flip":
        raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        raw[10] ^= 1  # the position itself: the MAC no longer fits
        mangle = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with pytest.raises(InvalidArgument) as info:
        cursors.decode("event", "", BOUND, mangle, "page_token")
    assert info.value.violations[0].field == "page_token"


def _fields(violations: Sequence[FieldViolation]) -> list[str]:
    return [v.field for v in violations]


def test_read_requests_are_checked_field_by_field() -> None:
    assert validate_query(analytics_pb2.QueryEventsRequest(group_by="properties.plan")) == []
    assert _fields(validate_query(analytics_pb2.QueryEventsRequest(group_by="colour"))) == [
        "group_by"
    ]
    assert _fields(validate_query(analytics_pb2.QueryEventsRequest(start=3, end=3))) == ["end"]
    assert _fields(validate_query(analytics_pb2.QueryEventsRequest(limit=-1))) == ["limit"]
    assert _fields(validate_list_alerts(telemetry_pb2.ListAlertsRequest(page_size=1001))) == [
        "page_size"
    ]
    assert validate_list_alerts(telemetry_pb2.ListAlertsRequest(page_size=1000)) == []
    assert _fields(validate_export(analytics_pb2.ExportEventsRequest(start=-1))) == ["start"]
    both = telemetry_pb2.WatchAlertsRequest(after="x", from_start=True)
    assert _fields(validate_watch_alerts(both)) == ["from_start"]
    bad = telemetry_pb2.AlertRequest(
        severity=9,  # type: ignore[arg-type]
        message="m" * 4097,
        attributes={"": "v", "k": "v" * 1025},
    )
    assert sorted(_fields(validate_alert_details(bad))) == [
        "attributes['']",
        "attributes['k']",
        "message",
        "severity",
    ]


@pytest.mark.parametrize(
    ("text", "ms"), [("", 0), ("0", 0), ("45s", 45_000), ("90m", 5_400_000), ("30d", 2_592_000_000)]
)
def test_durations(text: str, ms: int) -> None:
    assert parse_duration("retention", text) == ms


@pytest.mark.parametrize("text", ["30", "d", "-1d", "1.5h", "0d", "1w"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="retention"):
        ServerConfig(retention=text)


def test_events_and_alerts_retention_are_separate() -> None:
    config = ServerConfig(retention="30d", alerts_retention="7d")
    assert config.retention_ms("events") == 30 * 86_400_000
    assert config.retention_ms("alerts") == 7 * 86_400_000
    assert ServerConfig().retention_ms("events") == 0


class _NoStore:
    """The feed's buffer logic needs no store; any call would be a bug here."""


def _stored(seq: int, message: str = "") -> StoredAlert:
    return StoredAlert(
        Position(0, seq), AlertRow(f"t{seq}", "acme", "d", "t", 1, 1, None, 0, message)
    )


def test_the_feed_hands_over_only_positions_it_holds_completely() -> None:
    one = row_bytes(_stored(1).row)
    feed = AlertFeed(_NoStore(), max_bytes=8 * one)  # type: ignore[arg-type]
    feed._append([_stored(s) for s in range(1, 6)], Position(0, 5))
    live = feed.since(Position(0, 2))
    assert live is not None
    rows, through = live
    assert [r.position.seq for r in rows] == [3, 4, 5]
    assert through == Position(0, 5)
    # Fill well past capacity: the oldest fall out, and a watcher there must read the store.
    feed._append([_stored(s) for s in range(6, 20)], Position(0, 25))
    assert feed.floor > Position(0, 2)
    assert feed.since(Position(0, 2)) is None
    rows, through = feed.since(feed.floor) or ([], Position(0, 0))
    assert rows[0].position > feed.floor
    assert rows[-1].position.seq == 19
    assert through == Position(0, 25)  # complete past the last row: nothing there


def test_the_feed_is_bounded_in_bytes_whatever_the_size_of_the_alerts() -> None:
    cap = 1 << 20
    feed = AlertFeed(_NoStore(), max_bytes=cap)  # type: ignore[arg-type]
    big = "m" * 70_000  # about a maximum-size alert
    for seq in range(1, 201):
        feed._append([_stored(seq, big)], Position(0, seq))
        assert feed.held <= cap
    assert feed.held == sum(row_bytes(r.row) for r in feed._rows)
    # Counted in alerts, the feed kept 8,192 of these (~570 MB); now about 14.
    assert 0 < len(feed._rows) <= cap // 70_000
    assert feed._rows[-1].position.seq == 200
    assert feed.since(Position(0, 150)) is None
    assert feed.since(feed.floor) is not None


def test_a_watcher_takes_the_feed_in_bounded_slices_and_misses_nothing() -> None:
    feed = AlertFeed(_NoStore(), max_bytes=64 << 20)  # type: ignore[arg-type]
    rows = [_stored(seq, "m" * 50_000) for seq in range(1, 41)]
    feed._append(rows, Position(0, 40))
    position, seen = Position(0, 0), list[int]()
    while position < feed.head:
        live = feed.since(position)
        assert live is not None
        taken, position = live
        assert sum(row_bytes(r.row) for r in taken) <= SLICE_BYTES + row_bytes(rows[0].row)
        seen.extend(r.position.seq for r in taken)
    assert seen == list(range(1, 41))


def test_catch_up_pages_shrink_for_big_rows() -> None:
    small = [_stored(s) for s in range(10)]
    big = [_stored(s, "m" * 70_000) for s in range(10)]
    small_sizes = [row_bytes(r.row) for r in small]
    big_sizes = [row_bytes(r.row) for r in big]
    assert page_limit([], CATCH_UP_BYTES, CATCH_UP_PAGE) == CATCH_UP_PAGE
    assert page_limit(small_sizes, CATCH_UP_BYTES, CATCH_UP_PAGE) == CATCH_UP_PAGE
    assert page_limit(big_sizes, CATCH_UP_BYTES, CATCH_UP_PAGE) == CATCH_UP_BYTES // big_sizes[0]
    assert page_limit([CATCH_UP_BYTES * 2], CATCH_UP_BYTES, CATCH_UP_PAGE) == 1
