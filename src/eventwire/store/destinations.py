"""The destinations' bookkeeping statements, shared by both stores.

One row per destination (``eventwire_destinations``: its two positions, the
paused flag, a generation bumped by every operator change, the lease) and its
dead letters (``eventwire_dead_letters``). Each store formats ``{}`` with its
driver's placeholder; columns are constants, values travel as parameters.
"""

# ruff: noqa: S608 - the statements join constant identifiers and placeholders only
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from eventwire.store.base import DeadLetter, DestinationState, Position

STATE_COLUMNS: Final = (
    "name, events_xid, events_seq, alerts_xid, alerts_seq, paused, generation, owner, lease_until"
)
LETTER_COLUMNS: Final = (
    "id, destination, kind, xid, seq, tenant, key, name, payload, committed_at, error,"
    " attempts, created_at"
)
_LETTER_INSERTED: Final = LETTER_COLUMNS.removeprefix("id, ")


def statements(mark: str, cast: str = "") -> dict[str, str]:
    """Every statement with ``mark`` as placeholder; ``cast`` types a nullable integer
    parameter (PostgreSQL cannot infer ``coalesce($1, column)``)."""
    m = mark
    n = f"{m}{cast}"
    marks = ", ".join([m] * 12)
    return {
        "create": (
            "INSERT INTO eventwire_destinations (name, events_xid, events_seq, alerts_xid,"
            f" alerts_seq) VALUES ({m}, {m}, {m}, {m}, {m}) ON CONFLICT (name) DO NOTHING"
        ),
        "claim": (
            f"UPDATE eventwire_destinations SET owner = {m}, lease_until = {m}"
            f" WHERE name = {m} AND (owner = {m} OR owner = '' OR lease_until < {m})"
        ),
        "state": f"SELECT {STATE_COLUMNS} FROM eventwire_destinations WHERE name = {m}",
        "states": f"SELECT {STATE_COLUMNS} FROM eventwire_destinations ORDER BY name",
        "save": (
            f"UPDATE eventwire_destinations SET events_xid = {m}, events_seq = {m},"
            f" alerts_xid = {m}, alerts_seq = {m}, lease_until = {m}"
            f" WHERE name = {m} AND owner = {m} AND generation = {m}"
        ),
        "release": (
            "UPDATE eventwire_destinations SET owner = '', lease_until = 0"
            f" WHERE name = {m} AND owner = {m}"
        ),
        "control": (
            f"UPDATE eventwire_destinations SET paused = coalesce({n}, paused),"
            f" events_xid = coalesce({n}, events_xid), events_seq = coalesce({n}, events_seq),"
            f" alerts_xid = coalesce({n}, alerts_xid), alerts_seq = coalesce({n}, alerts_seq),"
            f" generation = generation + 1 WHERE name = {m}"
        ),
        "add_letter": (f"INSERT INTO eventwire_dead_letters ({_LETTER_INSERTED}) VALUES ({marks})"),
        "letters": (
            f"SELECT {LETTER_COLUMNS} FROM eventwire_dead_letters"
            f" WHERE destination = {m} AND id > {m} ORDER BY id LIMIT {m}"
        ),
    }


def create_params(name: str, start: tuple[Position, Position]) -> tuple[Any, ...]:
    return (name, *start[0], *start[1])


def claim_params(name: str, owner: str, now_ms: int, lease_ms: int) -> tuple[Any, ...]:
    return (owner, now_ms + lease_ms, name, owner, now_ms)


def save_params(
    name: str,
    owner: str,
    generation: int,
    positions: tuple[Position, Position],
    lease_until_ms: int,
) -> tuple[Any, ...]:
    return (*positions[0], *positions[1], lease_until_ms, name, owner, generation)


def control_params(
    name: str, paused: bool | None, positions: tuple[Position | None, Position | None]
) -> tuple[Any, ...]:
    events, alerts = positions
    return (
        None if paused is None else int(paused),
        None if events is None else events.xid,
        None if events is None else events.seq,
        None if alerts is None else alerts.xid,
        None if alerts is None else alerts.seq,
        name,
    )


def letter_params(letter: DeadLetter, now_ms: int) -> tuple[Any, ...]:
    return (
        letter.destination,
        letter.kind,
        *letter.position,
        letter.tenant,
        letter.key,
        letter.name,
        letter.payload,
        letter.committed_at_ms,
        letter.error,
        letter.attempts,
        now_ms,
    )


def state_of(row: Sequence[Any]) -> DestinationState:
    name, exid, eseq, axid, aseq, paused, generation, owner, until = row
    return DestinationState(
        str(name),
        Position(int(exid), int(eseq)),
        Position(int(axid), int(aseq)),
        bool(paused),
        int(generation),
        str(owner),
        int(until),
    )


def letter_of(row: Sequence[Any]) -> DeadLetter:
    ident, dest, kind, xid, seq, tenant, key, name, payload, committed, error, attempts, at = row
    return DeadLetter(
        int(ident),
        str(dest),
        str(kind),
        Position(int(xid), int(seq)),
        str(tenant),
        str(key),
        str(name),
        bytes(payload),
        int(committed),
        str(error),
        int(attempts),
        int(at),
    )
