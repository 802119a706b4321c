"""The storage boundary: what the services need from a database, and nothing else.

Adapters (SQLite, PostgreSQL) implement :class:`Store`; they hold no business
rules. Every write goes through :meth:`Store.commit`, which the ingest pipeline
calls with many requests' rows at once (group commit): one transaction, and the
caller learns per request what was new and what was a duplicate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Literal, NamedTuple, Protocol, TypeAlias

from eventwire.store.quarantine import (
    PlanRecord,
    QuarantineFilter,
    QuarantineGroup,
    QuarantineRow,
    StoredQuarantine,
)


class EventRow(NamedTuple):
    """One event, in the column order of the ``events`` table."""

    tenant: str
    event_id: str
    event_name: str
    user_id: str
    timestamp: int
    """Unix epoch milliseconds."""
    received_at: int
    """Unix epoch milliseconds at which the server received the event."""
    properties: str
    """The properties map as a JSON object."""
    plan_version: int = 0
    """The tracking plan version the event was checked against; 0: none."""
    violations: str | None = ""
    """The plan's violations it was accepted with, a JSON array; "" or None: none.
    Rows to write carry "" (stored as NULL): sqlite3 binds a None through an
    adapter lookup that raises and clears an AttributeError (bench/notes.md, B1)."""


EventValues: TypeAlias = tuple[str, str, str, str, int, int, str, int, str | None]
"""An :class:`EventRow`'s values in a plain tuple, what the batch paths build and the
stores take: a tuple subclass costs ~9,000 instructions an event more to build, to
bind (sqlite3 reads it through ``__getitem__``) and to free (bench/notes.md, B1)."""


class AlertRow(NamedTuple):
    """One alert, in the column order of the ``alerts`` table."""

    tracking_id: str
    tenant: str
    device_id: str
    alert_type: str
    timestamp: int
    received_at: int
    idempotency_key: str | None
    severity: int = 0
    message: str = ""
    attributes: str = "{}"
    """The attributes map as a JSON object."""


class Position(NamedTuple):
    """A row's place in commit order; positions compare as tuples. SQLite: ``(0, rowid)``
    (one writer: rowid order is commit order). PostgreSQL: ``(xid, seq)``, the writing
    transaction's id (xid8) and the row's sequence (:mod:`eventwire.store.postgres`)."""

    xid: int
    seq: int


ORIGIN: Final = Position(0, 0)
"""Before every row."""

Kind = Literal["alerts", "events"]


class AlertFilter(NamedTuple):
    """Which alerts a read returns; empty strings and zeros match everything."""

    tenant: str | None
    """None: every tenant (the process-wide live feed)."""
    device_id: str = ""
    alert_type: str = ""
    min_severity: int = 0
    start: int = 0
    """Inclusive lower bound on ``timestamp`` (ms); 0 = unbounded."""
    end: int = 0
    """Exclusive upper bound on ``timestamp`` (ms); 0 = unbounded."""

    def matches(self, row: AlertRow) -> bool:
        return (
            (self.tenant is None or row.tenant == self.tenant)
            and (not self.device_id or row.device_id == self.device_id)
            and (not self.alert_type or row.alert_type == self.alert_type)
            and row.severity >= self.min_severity
            and (not self.start or row.timestamp >= self.start)
            and (not self.end or row.timestamp < self.end)
        )


class StoredAlert(NamedTuple):
    position: Position
    row: AlertRow


class StoredEvent(NamedTuple):
    position: Position
    row: EventRow


class AlertPage(NamedTuple):
    rows: list[StoredAlert]
    through: Position
    """Every matching alert up to this position is in ``rows`` (or in an earlier
    page); reading on from here misses nothing and repeats nothing."""
    pending: bool = False
    """Committed rows exist past ``through`` that are not final yet (they wait
    for an older transaction): read again shortly, no notification may come."""


class EventPage(NamedTuple):
    rows: list[StoredEvent]
    through: Position
    """As :attr:`AlertPage.through`."""
    pending: bool = False


class DestinationState(NamedTuple):
    """A destination's row: where its relay is, and who relays it."""

    name: str
    events: Position
    """Every event up to here was delivered (or dead-lettered)."""
    alerts: Position
    paused: bool
    generation: int
    """Bumped by every operator change (pause, resume, replay): a relay whose save names
    an older generation is refused and reloads, so a replay is never overwritten."""
    owner: str
    """The replica holding the lease ("" when none)."""
    lease_until_ms: int


class DeadLetter(NamedTuple):
    """A row a destination refused repeatedly, kept until retried or discarded."""

    id: int
    destination: str
    kind: str
    """``event`` or ``alert``."""
    position: Position
    tenant: str
    key: str
    name: str
    payload: bytes
    committed_at_ms: int
    error: str
    attempts: int
    created_at_ms: int


class EventAggregation(NamedTuple):
    """A QueryEvents question, already validated by the service layer."""

    event_name: str
    start: int
    end: int
    bucket_ms: int
    """0: one bucket for the whole range."""
    group_by: str
    """``""``, ``event_name``, ``user_id`` or ``properties.<key>``."""
    limit: int


@dataclass(frozen=True, slots=True)
class Aggregate:
    bucket_start: int
    group: str
    count: int
    distinct_users: int


class EventQuery(NamedTuple):
    """Filters for counting events; empty strings and zeros match everything."""

    event_name: str = ""
    user_id: str = ""
    start: int = 0
    """Inclusive lower bound on ``timestamp`` (ms); 0 = unbounded."""
    end: int = 0
    """Exclusive upper bound on ``timestamp`` (ms); 0 = unbounded."""


class CommitResult(NamedTuple):
    inserted: list[int]
    """Per event group passed to :meth:`Store.commit`: how many rows were new."""
    tracking_ids: list[str]
    """Per alert: the stored tracking id (the first one's, for a repeated idempotency key)."""


class StoreError(Exception):
    """A storage operation failed for a reason that retrying will not fix."""


class StoreUnavailable(StoreError):
    """Storage cannot serve right now (down, unreachable, disk full); retrying later may work."""


class StoreGone(StoreUnavailable):
    """The database is no longer the one this server opened: its file was deleted or
    replaced, or the database was dropped. Writing on would acknowledge data into
    nothing, so the store refuses every write until the server is restarted on a
    good store; the message names the file or database, for the operator.
    """


class Store(Protocol):
    """Durable storage for events and alerts. All methods are safe to call concurrently."""

    cancel_safe_commit: bool
    """Whether a :meth:`commit` whose awaiting task is cancelled still completes
    or rolls back cleanly, leaving the store ready for the next one; the
    pipeline lets a lone caller commit its own request only then."""

    async def open(self) -> None:
        """Connect and bring the schema to the newest migration."""

    async def close(self) -> None:
        """Release connections; pending work must already have been committed."""

    async def commit(
        self,
        events: Sequence[Sequence[EventValues]],
        alerts: Sequence[AlertRow],
        quarantine: Sequence[QuarantineRow] = (),
    ) -> CommitResult:
        """Store everything in one transaction, durably, or nothing at all.

        Events whose ``(tenant, event_id)`` already exists are skipped and counted
        as duplicates; an alert whose ``(tenant, idempotency_key)`` already exists is
        not stored again and its first ``tracking_id`` is returned. A quarantined
        row whose ``(tenant, kind, key)`` is already quarantined is skipped.
        """

    async def get_alert(self, tenant: str, tracking_id: str) -> AlertRow | None: ...

    async def count_events(self, tenant: str, query: EventQuery) -> int: ...

    async def check(self) -> None:
        """Raise :class:`StoreUnavailable` unless storage can serve reads and writes."""

    async def verify(self) -> None:
        """Raise :class:`StoreUnavailable` if storage is known to be unusable, cheaply.

        Called every second or so while serving, so it must cost next to nothing:
        no transaction, no round trip (SQLite: three metadata syscalls).
        """

    # -- reads in commit order (see docs/reading.md) -------------------------------

    async def read_alerts(self, after: Position, where: AlertFilter, limit: int) -> AlertPage:
        """Up to ``limit`` matching alerts after ``after``, in commit order.

        Only alerts whose place in commit order is final are returned: no alert
        can commit later at a position before the page's ``through``.
        """

    async def read_events(
        self, after: Position, tenant: str | None, query: EventQuery, limit: int
    ) -> EventPage:
        """As :meth:`read_alerts`, for events (``query.user_id`` is ignored; ``tenant``
        None: every tenant's, for the destinations' relays)."""

    async def head(self, kind: Kind) -> Position:
        """The position up to which every row of ``kind`` is final, now."""

    async def tail(self, kind: Kind) -> Position:
        """A position past every row of ``kind`` committed so far (some may not be final)."""

    async def aggregate_events(self, tenant: str, query: EventAggregation) -> list[Aggregate]: ...

    async def purge(
        self, kind: Kind, received_before: int, limit: int, upto: Position | None = None
    ) -> int:
        """Delete at most ``limit`` of the oldest rows (in commit order) received
        before ``received_before`` (ms) and, when ``upto`` is given, at or before
        that position (what every destination has delivered), in one short
        transaction; how many went.

        Deletion stops at the first row not yet expired, so what is left is
        always a suffix in commit order and :meth:`retained_after` says where it
        starts.
        """

    async def retained_after(self, kind: Kind) -> Position:
        """Rows up to this position may have been purged; those after it are kept."""

    async def cursor_key(self) -> bytes:
        """A random secret kept in the database, the same for every replica."""

    def subscribe(self, callback: Callable[[Kind, int], None]) -> None:
        """Call ``callback(kind, xid)`` (on the event loop) whenever rows of a kind may
        have committed, by this process or another replica. Spurious calls are fine.

        ``xid``: the committing transaction's id when known (PostgreSQL's
        notifications carry it), so a reader already past it can skip the call;
        0 when unknown.
        """

    # -- destinations (see eventwire.destinations) -----------------------------------

    async def claim_destination(
        self, name: str, owner: str, now_ms: int, lease_ms: int, start: tuple[Position, Position]
    ) -> DestinationState:
        """Create the destination's row if missing (positions ``start``: events, alerts),
        and give ``owner`` its lease if it holds it already or the lease expired.
        The state after: ``owner`` holds the lease if ``state.owner == owner``."""

    async def save_destination(
        self,
        name: str,
        owner: str,
        generation: int,
        positions: tuple[Position, Position],
        lease_until_ms: int,
    ) -> bool:
        """Save the positions (events, alerts) and extend the lease, only if ``owner``
        still holds it and no operator changed the row since ``generation``."""

    async def release_destination(self, name: str, owner: str) -> None:
        """Give up the lease (on shutdown), so another replica takes over at once."""

    async def destination_states(self) -> list[DestinationState]: ...

    async def control_destination(
        self,
        name: str,
        *,
        paused: bool | None = None,
        positions: tuple[Position | None, Position | None] = (None, None),
    ) -> DestinationState | None:
        """Pause, resume or move a destination (replay); bumps its generation. None if
        no such destination was ever relayed."""

    async def add_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        """Keep ``letters`` (their ``id`` and ``created_at_ms`` are assigned here)."""

    async def dead_letters(self, destination: str, after_id: int, limit: int) -> list[DeadLetter]:
        """A destination's dead letters with ids above ``after_id``, oldest first."""

    async def drop_dead_letters(self, destination: str, ids: Sequence[int]) -> int:
        """Remove the given dead letters; how many there were."""

    async def backlog(self, kind: Kind, after: Position, cap: int) -> tuple[int, int]:
        """Rows of ``kind`` committed after ``after`` (counted up to ``cap``) and the
        oldest one's receive time in ms (0 when there is none)."""

    # -- tracking plans and the quarantine (docs/tracking-plans.md) --------------------

    async def put_plan(self, document: str, applied_at: int, applied_by: str) -> int:
        """Store ``document`` as the next plan version, and tell every replica; the version."""

    async def get_plan(self, version: int = 0) -> PlanRecord | None:
        """Plan ``version``, or the newest for 0; None if there is none."""

    async def plan_version(self) -> int:
        """The newest plan version, cheaply; 0 when none was ever applied."""

    def watch_plans(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (on the event loop) when a plan may have been applied,
        here or on another replica that can notify (spurious calls are fine)."""

    async def quarantine_groups(
        self, where: QuarantineFilter, limit: int
    ) -> tuple[list[QuarantineGroup], int]:
        """Matching rows counted by kind, name and violation rule (largest groups
        first, at most ``limit``), and how many rows match in all."""

    async def read_quarantine(
        self, where: QuarantineFilter, after: int, limit: int
    ) -> list[StoredQuarantine]:
        """Up to ``limit`` matching rows with ``seq`` above ``after``, in ``seq`` order."""

    async def release_quarantine(
        self, events: Sequence[tuple[int, EventRow]], alerts: Sequence[tuple[int, AlertRow]]
    ) -> tuple[int, int]:
        """Move quarantined rows (by ``seq``) into the events and alerts tables, in one
        transaction: each row is deleted from the quarantine and inserted once,
        whoever else releases it at the same time. (moved, of which already stored)."""

    async def discard_quarantine(self, where: QuarantineFilter) -> int:
        """Delete matching rows; how many."""

    async def purge_quarantine(self, quarantined_before: int, limit: int) -> int:
        """Delete at most ``limit`` rows quarantined before ``quarantined_before`` (retention)."""
