"""The disk spool on real files: framing, torn tails, damage, bounds, locks, a full disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventwire.client import SpoolFullError
from eventwire.client.tracker.records import MAGIC
from eventwire.client.tracker.spool import Spool
from tests.support.spool import crash, drain, labels, payloads


def segments(root: Path) -> list[Path]:
    return sorted(root.glob("lane-*/*.seg"))


def test_round_trip_in_order_and_files_go_once_acked(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=64 * 1024)
    written = payloads(1500)
    for i in range(0, 1500, 500):
        spool.append(written[i : i + 500], labels(500))
    assert spool.events == 1500
    assert spool.unread == 1500
    assert len(segments(tmp_path)) > 1, "64 KiB segments: 150 KB needs several"
    first = spool.read(100, 1 << 20)
    assert first is not None
    assert first.events == written[:100]
    assert first.runs == [(1, 100)]
    # Read but not acknowledged: still spooled, still on disk.
    assert spool.events == 1500
    spool.ack(first.segment, 100)
    assert drain(spool) == written[100:]
    assert spool.events == 0
    assert spool.nbytes == 0
    assert segments(tmp_path) == []
    spool.close()
    assert list(tmp_path.iterdir()) == [], "an empty lane is removed on close"


def test_a_batch_respects_the_byte_limit(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.append(payloads(50, size=1000), labels(50))
    read = spool.read(1000, 10_000)
    assert read is not None
    assert len(read.events) == 10
    spool.close()


def test_a_crashed_spool_is_adopted_and_replayed(tmp_path: Path) -> None:
    first = Spool(tmp_path, max_bytes=1 << 20)
    written = payloads(300)
    first.append(written, labels(300, epoch=7))
    first.sync()
    # Half of it was delivered before the crash, but never acknowledged on disk:
    # it is replayed (the server's dedupe absorbs it).
    read = first.read(150, 1 << 20)
    assert read is not None
    crash(first)
    second = Spool(tmp_path, max_bytes=1 << 20)
    assert second.adopt() == 300
    read = second.read(1000, 1 << 20)
    assert read is not None
    assert read.runs == [(0, 300)], "recovered events belong to epoch 0"
    assert read.events == written
    second.ack(read.segment, 300)
    second.close()
    assert list(tmp_path.iterdir()) == [], "a drained adopted lane is removed"


def test_a_torn_tail_is_ignored(tmp_path: Path) -> None:
    first = Spool(tmp_path, max_bytes=1 << 20)
    written = payloads(10)
    first.append(written, labels(10))
    crash(first)
    (segment,) = segments(tmp_path)
    # A crash in the middle of the next append: a header promising 100 bytes, 40 of them there.
    with segment.open("ab") as f:
        f.write((100).to_bytes(4, "little") + b"\0\0\0\0" + b"y" * 40)
    second = Spool(tmp_path, max_bytes=1 << 20)
    assert second.adopt() == 10
    assert drain(second) == written
    assert not segment.exists(), "delivered, the segment and its torn tail are gone"
    second.close()


def test_a_damaged_record_ends_its_segment(tmp_path: Path) -> None:
    first = Spool(tmp_path, max_bytes=1 << 20)
    written = payloads(10)
    first.append(written, labels(10))
    crash(first)
    (segment,) = segments(tmp_path)
    data = bytearray(segment.read_bytes())
    record = 8 + 100
    data[len(MAGIC) + 4 * record + 20] ^= 0xFF  # a bit flip inside the fifth payload
    segment.write_bytes(bytes(data))
    second = Spool(tmp_path, max_bytes=1 << 20)
    assert second.adopt() == 4
    assert drain(second) == written[:4]
    second.close()


def test_max_bytes_refuses_whole_appends(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=64 * 1024, segment_bytes=64 * 1024)
    spool.append(payloads(500), labels(500))
    used = spool.nbytes
    with pytest.raises(SpoolFullError, match="full"):
        spool.append(payloads(200, start=500), labels(200))
    assert spool.nbytes == used
    assert spool.events == 500
    assert drain(spool) == payloads(500)
    spool.close()


def test_a_lane_held_by_a_live_spool_is_not_adopted(tmp_path: Path) -> None:
    owner = Spool(tmp_path, max_bytes=1 << 20)
    owner.append(payloads(5), labels(5))
    other = Spool(tmp_path, max_bytes=1 << 20)
    assert other.adopt() == 0
    owner.close()  # an orderly close leaves the undelivered lane for the next one
    assert other.adopt() == 5
    assert drain(other) == payloads(5)
    other.close()
