"""Ids: UUIDv7s carry version, variant and time, sort by creation and never repeat."""

from __future__ import annotations

import os
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


def _random_parts(ids: list[str]) -> set[int]:
    return {uuid.UUID(i).int & ((1 << 62) - 1) for i in ids}


def test_a_forked_child_never_repeats_its_parents_random_bits() -> None:
    uuid7()  # the parent's random pool is now filled
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next ids and leave
        os.write(write, "\n".join(uuid7() for _ in range(50)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = pipe.read().split("\n")
    os.waitpid(pid, 0)
    parent = [uuid7() for _ in range(50)]
    assert len(child) == 50
    assert not _random_parts(child) & _random_parts(parent)
