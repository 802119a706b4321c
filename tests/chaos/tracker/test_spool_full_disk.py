"""A spool on a really full disk: a clear error, and nothing already written is lost."""

from __future__ import annotations

import os
from pathlib import Path

from eventwire.client import SpoolFullError
from eventwire.client.tracker.spool import Spool
from tests.support.spool import crash, drain, labels, payloads


def test_a_full_disk_is_a_clear_error_and_loses_nothing_written(small_disk: Path) -> None:
    spool = Spool(small_disk / "spool", max_bytes=1 << 30, segment_bytes=256 * 1024)
    accepted: list[bytes] = []
    error: SpoolFullError | None = None
    for chunk in range(1000):  # bounded: 2 MiB are full long before
        batch = payloads(100, start=chunk * 100, size=300)
        try:
            spool.append(batch, labels(100))
        except SpoolFullError as exc:
            error = exc
            break
        accepted.extend(batch)
    assert error is not None
    assert isinstance(error.__cause__, OSError)
    assert "no space" in str(error)
    spool.sync()
    crash(spool)
    # Every append that returned is intact; the failed one left no torn tail behind.
    again = Spool(small_disk / "spool", max_bytes=1 << 30)
    assert again.adopt() == len(accepted)
    assert drain(again) == accepted
    again.close()
    assert not os.listdir(small_disk / "spool")
