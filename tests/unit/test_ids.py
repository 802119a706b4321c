"""Ids: UUIDv7s carry version, variant and time, sort by creation and never repeat."""

from __future__ import annotations

import time
import uuid

from eventwire._ids import random_id, uuid7


def test_uuid7_has_version_variant_and_time() -> None:
    before = time.time_ns() // 1_000_000
    value = uuid.UUID(uuid7())
    after = time.time_ns() // 1_000_000
    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert before <= value.int >> 80 <= after


def test_uuid7_sorts_by_creation_millisecond() -> None:
    first = uuid7()
    time.sleep(0.002)
    assert uuid7() > first


def test_ids_are_unique() -> None:
    assert len({uuid7() for _ in range(10_000)}) == 10_000
    assert len({random_id() for _ in range(10_000)}) == 10_000
