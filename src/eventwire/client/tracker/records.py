"""The spool's on-disk records: ``<u32 length><u32 crc32(length bytes + payload)><payload>``.

Little endian; the payload is one framed event. A segment file starts with
:data:`MAGIC`. A record is valid only if it is whole and its CRC matches: a
write torn by a crash or a full disk ends a segment, and whatever follows it
in that file is ignored.
"""

from __future__ import annotations

import os
import struct
import zlib
from typing import Final

__all__ = ["HEADER", "MAGIC", "MAX_RECORD", "checksum", "frame", "parse", "scan"]

MAGIC: Final = b"EWSPOOL1"
HEADER: Final = struct.Struct("<II")
MAX_RECORD: Final = 1 << 20


def checksum(payload: bytes) -> int:
    return zlib.crc32(payload, zlib.crc32(len(payload).to_bytes(4, "little")))


def frame(payload: bytes) -> bytes:
    return HEADER.pack(len(payload), checksum(payload)) + payload


def scan(fd: int) -> tuple[int, int]:
    """Valid size and record count of a segment: everything up to the first bad record."""
    head = os.pread(fd, len(MAGIC), 0)
    if head != MAGIC:
        return 0, 0
    offset = len(MAGIC)
    records = 0
    chunk = b""
    chunk_at = offset
    while True:
        pos = offset - chunk_at
        if len(chunk) - pos < HEADER.size:
            chunk = os.pread(fd, 1 << 20, offset)
            chunk_at = offset
            pos = 0
            if len(chunk) < HEADER.size:
                return offset, records
        length, crc = HEADER.unpack_from(chunk, pos)
        if length > MAX_RECORD:
            return offset, records
        end = pos + HEADER.size + length
        if end > len(chunk):
            chunk = os.pread(fd, HEADER.size + length, offset)
            chunk_at = offset
            pos = 0
            end = HEADER.size + length
            if len(chunk) < end:
                return offset, records
        if checksum(chunk[pos + HEADER.size : end]) != crc:
            return offset, records
        offset += HEADER.size + length
        records += 1


def parse(
    fd: int, offset: int, end: int, max_events: int, max_bytes: int
) -> tuple[list[bytes], int, bool]:
    """Whole records from ``offset`` (before ``end``): payloads, bytes consumed, damage found."""
    events: list[bytes] = []
    chunk = os.pread(fd, min(end - offset, max_bytes + HEADER.size * max_events), offset)
    pos = 0
    total = 0
    while len(events) < max_events and pos < len(chunk):
        if len(chunk) - pos < HEADER.size:
            return events, pos, not events
        length, crc = HEADER.unpack_from(chunk, pos)
        if length > MAX_RECORD:
            return events, pos, True
        stop = pos + HEADER.size + length
        if stop > len(chunk):
            if events:
                break
            # A record bigger than one read: fetch exactly it.
            chunk = os.pread(fd, HEADER.size + length, offset)
            pos, stop = 0, HEADER.size + length
            if len(chunk) < stop:
                return events, pos, True
        payload = chunk[pos + HEADER.size : stop]
        if checksum(payload) != crc:
            return events, pos, True
        if events and total + length > max_bytes:
            break
        events.append(payload)
        total += length
        pos = stop
    return events, pos, False
