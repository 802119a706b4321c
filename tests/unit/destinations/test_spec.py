"""Destination URLs: eventwire's options parsed out, bad ones refused naming the problem."""

from __future__ import annotations

import pytest

from eventwire.destinations.jetstream import JetStreamSink, msg_id, subject, token
from eventwire.destinations.kinds import make_sink
from eventwire.destinations.sink import Item
from eventwire.destinations.spec import parse_destination
from eventwire.store.base import ORIGIN, Position


def test_options_are_taken_out_and_the_rest_left_to_the_kind() -> None:
    spec = parse_destination(
        "js=nats://u:pw@a:4222,b:4222/EW?carry=events&event=x&event=y&batch=50"
        "&attempts=3&timeout=2.5&start=latest&replicas=3"
    )
    assert (spec.name, spec.scheme, spec.carries) == ("js", "nats", "events")
    assert spec.event_names == {"x", "y"}
    assert not spec.alert_types
    assert (spec.batch, spec.attempts, spec.timeout, spec.start) == (50, 3, 2.5, "latest")
    assert spec.options == {"replicas": "3"}
    assert spec.shown == "nats://a:4222,b:4222/EW"  # no credentials
    sink = make_sink(spec)
    assert isinstance(sink, JetStreamSink)
    assert sink.servers == ["nats://u:pw@a:4222", "nats://b:4222"]
    assert sink.stream == "EW"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("noequals", "NAME=URL"),
        ("bad name=nats://h/S", "NAME=URL"),
        ("x=ftp://h/S", "scheme"),
        ("x=nats://h/S?carry=some", "carry"),
        ("x=nats://h/S?batch=0", "batch"),
        ("x=nats://h/S?batch=ten", "integers"),
        ("x=nats://h/S?timeout=nan", "timeout"),
        ("x=nats://h/S?start=now", "start"),
        ("x=nats://h/S?batch=1&batch=2", "more than once"),
    ],
)
def test_bad_urls_are_refused_naming_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_destination(text)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("x=nats://h:4222", "STREAM"),
        ("x=nats://h:4222/a.b", "STREAM"),
        ("x=nats://h:4222/S?replicas=two", "replicas"),
        ("x=nats://h:4222/S?colour=red", "unknown JetStream option"),
    ],
)
def test_bad_jetstream_urls_are_refused(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        make_sink(parse_destination(text))


def test_subjects_are_sanitised_tokens_and_ids_unique_across_tenants() -> None:
    event = Item("event", 7, "", "e1", "page view.home", b"{}", 0)
    assert subject(event) == "eventwire.events._.page_view_home"
    assert msg_id(event) == "e1"
    other = Item("event", 7, "acme", "e1", "*", b"{}", 0, xid=3)
    assert subject(other) == "eventwire.events.acme._"
    assert msg_id(other) == "acme/e1"
    alert = Item("alert", 1, "acme", "trk", "over>heat", b"{}", 0)
    assert subject(alert) == "eventwire.alerts.acme.over_heat"
    assert msg_id(alert) == "trk"
    assert token("") == "_"
    assert other.place == Position(3, 7) > ORIGIN


def test_a_webhook_url_without_its_secret_is_refused_naming_the_destination() -> None:
    # Until destinations/webhook.py is in the build the scheme says so; with it,
    # the webhook kind refuses a URL without its signing secret.
    with pytest.raises(ValueError, match=r"^destination hook: .*(not available|secret)"):
        make_sink(parse_destination("hook=https://example.com/hooks?carry=alerts"))


def test_positions_and_times_on_the_command_line() -> None:
    from eventwire._errors import InvalidArgument
    from eventwire.destinations.ops import parse_position, position_text
    from eventwire.runtime.cli_destinations import since_ms

    assert parse_position("12", "from") == Position(0, 12)
    assert parse_position("7.3", "from") == Position(7, 3)
    assert position_text(Position(7, 3)) == "7.3"
    for bad in ("", "x", "-1", "1.-2", "1.2.3"):
        with pytest.raises(InvalidArgument):
            parse_position(bad, "from")
    assert since_ms("1700000000000") == 1_700_000_000_000
    assert since_ms("2023-11-14T22:13:20Z") == 1_700_000_000_000
    assert since_ms("2023-11-14T22:13:20") == 1_700_000_000_000
