"""The count of TLS handshakes under way: until the protocol hears of it, or the deadline."""

from __future__ import annotations

from eventwire.frontends.http.limits import Handshakes


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_handshake_counts_until_it_ends() -> None:
    clock = Clock()
    handshakes = Handshakes(10.0, clock)
    a, b = object(), object()
    handshakes.begin(a)
    handshakes.begin(b)
    assert len(handshakes) == 2
    handshakes.end(a)
    handshakes.end(a)  # ending twice is harmless
    assert len(handshakes) == 1


def test_an_abandoned_handshake_stops_counting_after_its_deadline() -> None:
    clock = Clock()
    handshakes = Handshakes(10.0, clock)
    first = object()
    handshakes.begin(first)
    clock.now += 5
    handshakes.begin(object())
    clock.now += 5.5  # the first is past 10 s, not yet past the slack
    assert len(handshakes) == 2
    clock.now += 1
    assert len(handshakes) == 1
    clock.now += 5
    assert len(handshakes) == 0
    handshakes.end(first)  # its protocol may still hear of it late
    assert len(handshakes) == 0
