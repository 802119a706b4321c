"""The destination operations as request and reply messages, the same on every door
(gRPC ``destinations.DestinationsService``, the gateway's ``/v1/destinations`` routes,
``eventwire destinations``): checks, then :class:`Destinations`."""

from __future__ import annotations

import base64
from typing import Final

from eventwire._errors import Code, FieldViolation, InvalidArgument, ServiceError, Unavailable
from eventwire.api import destinations_pb2 as pb
from eventwire.destinations.relay import RelayStatus
from eventwire.destinations.service import Destinations
from eventwire.destinations.sink import DeliveryError, Rejected
from eventwire.destinations.spec import DestinationSpec
from eventwire.store.base import (
    ORIGIN,
    AlertFilter,
    DeadLetter,
    DestinationState,
    EventQuery,
    Position,
)

DEFAULT_PAGE: Final = 100


class StillRefused(ServiceError):
    """FAILED_PRECONDITION: the destination refuses these rows until something changes there."""

    code = Code.FAILED_PRECONDITION


MAX_PAGE: Final = 1000


def position_text(position: Position) -> str:
    return f"{position.xid}.{position.seq}"


def parse_position(text: str, field: str) -> Position:
    xid, dot, seq = text.strip().partition(".")
    try:
        position = Position(int(xid), int(seq)) if dot else Position(0, int(xid))
    except ValueError:
        position = Position(-1, -1)
    if position.xid < 0 or position.seq < 0:
        raise InvalidArgument([FieldViolation(field, "must be a position: XID.SEQ or SEQ")])
    return position


class DestinationOps:
    def __init__(self, destinations: Destinations) -> None:
        self._destinations = destinations

    async def list_destinations(
        self, req: pb.ListDestinationsRequest
    ) -> pb.ListDestinationsResponse:
        return pb.ListDestinationsResponse(
            destinations=[
                _destination(spec, status, state)
                for spec, status, state in await self._destinations.states()
            ]
        )

    async def pause_destination(self, req: pb.DestinationRequest) -> pb.Destination:
        await self._destinations.pause(self._named(req.name), paused=True)
        return await self._one(req.name)

    async def resume_destination(self, req: pb.DestinationRequest) -> pb.Destination:
        await self._destinations.pause(self._named(req.name), paused=False)
        return await self._one(req.name)

    async def replay_destination(self, req: pb.ReplayDestinationRequest) -> pb.Destination:
        name = self._named(req.name)
        kinds = req.kinds or "both"
        if kinds not in ("events", "alerts", "both"):
            raise InvalidArgument([FieldViolation("kinds", "must be events, alerts or both")])
        if bool(req.from_position) == bool(req.since):
            raise InvalidArgument(
                [FieldViolation("from_position", "give exactly one of from_position and since")]
            )
        events = alerts = None
        if req.from_position:
            start = parse_position(req.from_position, "from_position")
            events = alerts = start
        else:
            events, alerts = await self._since(req.since)
        await self._destinations.replay(
            name,
            events=events if kinds in ("events", "both") else None,
            alerts=alerts if kinds in ("alerts", "both") else None,
        )
        return await self._one(name)

    async def _since(self, since: int) -> tuple[Position, Position]:
        """Just before the first event and the first alert with a timestamp >= ``since``."""
        store = self._destinations.store
        events = await store.read_events(ORIGIN, None, EventQuery(start=since), 1)
        alerts = await store.read_alerts(ORIGIN, AlertFilter(None, start=since), 1)
        first_event = events.rows[0].position if events.rows else events.through
        first_alert = alerts.rows[0].position if alerts.rows else alerts.through
        return _before(first_event, bool(events.rows)), _before(first_alert, bool(alerts.rows))

    async def list_dead_letters(self, req: pb.ListDeadLettersRequest) -> pb.ListDeadLettersResponse:
        name = self._named(req.name)
        size = req.page_size or DEFAULT_PAGE
        if not 1 <= size <= MAX_PAGE:
            raise InvalidArgument([FieldViolation("page_size", f"must be in [1, {MAX_PAGE}]")])
        after = _page_token(req.page_token)
        letters = await self._destinations.dead_letters(name, after, size)
        return pb.ListDeadLettersResponse(
            dead_letters=[_letter(letter) for letter in letters],
            next_page_token=str(letters[-1].id) if len(letters) == size else "",
        )

    async def retry_dead_letters(self, req: pb.DeadLettersRequest) -> pb.DeadLettersResponse:
        letters = await self._chosen(req)
        try:
            count = await self._destinations.retry(req.name, letters)
        except Rejected as exc:
            raise StillRefused(
                f"destination {req.name} refused the dead letters again; they stay: {exc}"
            ) from exc
        except DeliveryError as exc:
            raise Unavailable(
                f"destination {req.name} could not be reached; the dead letters stay: {exc}"
            ) from exc
        return pb.DeadLettersResponse(count=count)

    async def discard_dead_letters(self, req: pb.DeadLettersRequest) -> pb.DeadLettersResponse:
        letters = await self._chosen(req)
        ids = [letter.id for letter in letters]
        return pb.DeadLettersResponse(count=await self._destinations.discard(req.name, ids))

    async def _chosen(self, req: pb.DeadLettersRequest) -> list[DeadLetter]:
        name = self._named(req.name)
        if bool(req.ids) == req.all:
            raise InvalidArgument([FieldViolation("ids", "give ids, or all = true, not both")])
        letters = await self._destinations.dead_letters(name, 0, MAX_PAGE)
        if req.all:
            return letters
        wanted = set(req.ids)
        return [letter for letter in letters if letter.id in wanted]

    def _named(self, name: str) -> str:
        # An unknown destination is NOT_FOUND before the rest of the request is judged:
        # nothing else about a request for a destination that does not exist matters.
        return self._destinations.known(_name(name)).name

    async def _one(self, name: str) -> pb.Destination:
        for spec, status, state in await self._destinations.states():
            if spec.name == name:
                return _destination(spec, status, state)
        raise AssertionError(name)  # pragma: no cover - _name() checked it is configured


def _name(name: str) -> str:
    if not name:
        raise InvalidArgument([FieldViolation("name", "is required")])
    return name


def _page_token(token: str) -> int:
    if not token:
        return 0
    if not token.isdigit():
        raise InvalidArgument([FieldViolation("page_token", "is not a token this server issued")])
    return int(token)


def _before(position: Position, found: bool) -> Position:
    if not found:
        return position  # nothing that recent: deliver from what is committed next
    return Position(position.xid, max(0, position.seq - 1))


def _destination(
    spec: DestinationSpec, status: RelayStatus, state: DestinationState | None
) -> pb.Destination:
    return pb.Destination(
        name=spec.name,
        url=spec.shown,
        carries=spec.carries,
        state=status.state,
        paused=bool(state and state.paused),
        owner=state.owner if state else "",
        events_position=position_text(state.events if state else ORIGIN),
        alerts_position=position_text(state.alerts if state else ORIGIN),
        lag_rows=status.lag_rows,
        lag_seconds=status.lag_seconds,
        breaker=status.breaker,
        delivered=status.delivered,
        retried=status.retried,
        dead_lettered=status.dead_lettered,
        last_error=status.last_error,
    )


def _letter(letter: DeadLetter) -> pb.DeadLetter:
    try:
        payload = letter.payload.decode()
    except UnicodeDecodeError:
        payload = base64.b64encode(letter.payload).decode()
    return pb.DeadLetter(
        id=letter.id,
        kind=letter.kind,
        position=position_text(letter.position),
        tenant=letter.tenant,
        key=letter.key,
        name=letter.name,
        payload=payload,
        error=letter.error,
        attempts=letter.attempts,
        created_at=letter.created_at_ms,
    )
