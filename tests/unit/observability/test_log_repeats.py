"""Identical warnings are collapsed into one line per interval, with a count."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import orjson
import pytest

from eventwire.observability import logs


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def out(clock: Clock) -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    logs.configure("info", "json", stream)
    # The fake clock replaces the monotonic one of the filter configure installed.
    (handler,) = root.handlers
    (repeats,) = [f for f in handler.filters if isinstance(f, logs.RepeatFilter)]
    repeats._clock = clock
    yield stream
    root.handlers[:], level = saved
    root.setLevel(level)


def lines(out: io.StringIO) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in out.getvalue().splitlines()]


def test_identical_failures_make_one_line_then_one_count_per_interval(
    out: io.StringIO, clock: Clock
) -> None:
    log = logging.getLogger("eventwire.ingest.pipeline")
    for i in range(58):
        log.warning("commit failed: %s", f"disk full ({i})")
        clock.now += 0.1
    assert [line["msg"] for line in lines(out)] == ["commit failed: disk full (0)"]
    clock.now = 1010.0
    log.warning("commit failed: %s", "disk full (58)")
    _, summary, again = lines(out)
    assert summary["msg"] == "commit failed: disk full (57) (repeated 57 times in the last 10 s)"
    assert summary["repeated"] == 57
    assert summary["level"] == "warning"
    assert summary["logger"] == "eventwire.ingest.pipeline"
    assert again["msg"] == "commit failed: disk full (58)"


def test_different_templates_levels_and_loggers_are_not_collapsed(out: io.StringIO) -> None:
    logging.getLogger("eventwire.a").warning("one %s", 1)
    logging.getLogger("eventwire.a").warning("two %s", 1)
    logging.getLogger("eventwire.a").error("one %s", 1)
    logging.getLogger("eventwire.b").warning("one %s", 1)
    assert len(lines(out)) == 4


def test_info_lines_are_never_collapsed(out: io.StringIO) -> None:
    for _ in range(3):
        logging.getLogger("eventwire.server").info("auth tokens reloaded")
    assert len(lines(out)) == 3


def test_a_count_still_held_is_written_by_another_line_after_the_interval(
    out: io.StringIO, clock: Clock
) -> None:
    log = logging.getLogger("eventwire.ingest.pipeline")
    for _ in range(5):
        log.warning("commit failed: %s", "disk full")
    clock.now += 30
    logging.getLogger("eventwire.server").error("storage unavailable")
    msgs = [line["msg"] for line in lines(out)]
    assert msgs[1] == "commit failed: disk full (repeated 4 times in the last 30 s)"
    assert msgs[2] == "storage unavailable"


def test_counts_still_held_are_written_when_logging_shuts_down(out: io.StringIO) -> None:
    log = logging.getLogger("eventwire.ingest.pipeline")
    for _ in range(3):
        log.warning("commit failed: %s", "disk full")
    logging.getLogger().handlers[0].close()
    assert lines(out)[-1]["repeated"] == 2


def test_repeat_interval_zero_keeps_every_line() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logs.configure("info", "json", stream, repeat_interval=0)
        for _ in range(3):
            logging.getLogger("eventwire.x").warning("same")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    assert len(stream.getvalue().splitlines()) == 3
