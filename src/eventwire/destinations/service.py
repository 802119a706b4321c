"""Every configured destination's relay, and what operators do with them.

Built by the composition root from ``--destination`` specs. Each relay runs in
every replica (and every ``--workers`` process); the lease in the store lets
exactly one of them deliver at a time. Operations (pause, resume, replay,
dead letters) are changes to the destination's row, so they work from any
replica, whichever one holds the lease.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Sequence

from eventwire._errors import FieldViolation, InvalidArgument, NotFound
from eventwire.config import ServerConfig
from eventwire.destinations.kinds import make_sink
from eventwire.destinations.relay import Relay, RelayStatus
from eventwire.destinations.spec import DestinationSpec, parse_destination
from eventwire.store.base import DeadLetter, DestinationState, Kind, Position, Store

log = logging.getLogger("eventwire.destinations")


class Destinations:
    def __init__(
        self, specs: Sequence[DestinationSpec], store: Store, *, lease_seconds: float = 5.0
    ) -> None:
        self.specs = {spec.name: spec for spec in specs}
        self.store = self._store = store
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        # Sinks are built now: a URL that cannot work fails startup, not later.
        self.relays = {
            spec.name: Relay(spec, make_sink(spec), store, owner=self.owner,
                             lease_seconds=lease_seconds)
            for spec in specs
        }  # fmt: skip

    @classmethod
    def from_config(cls, config: ServerConfig, store: Store) -> Destinations:
        """``--destination`` specs; ValueError naming the first that cannot work."""
        specs = [parse_destination(text) for text in config.destinations]
        return cls(specs, store, lease_seconds=config.destination_lease)

    def start(self) -> None:
        if not self.relays:
            return
        self._store.subscribe(self._on_commit)
        for relay in self.relays.values():
            relay.start()
        log.info(
            "relaying destinations",
            extra={"destinations": ", ".join(f"{s.name}={s.shown}" for s in self.specs.values())},
        )

    def _on_commit(self, kind: Kind, xid: int) -> None:
        for relay in self.relays.values():
            relay.wake(kind, xid)

    async def close(self) -> None:
        for relay in self.relays.values():
            await relay.close()

    def statuses(self) -> list[RelayStatus]:
        return [relay.status for relay in self.relays.values()]

    async def floor(self, kind: Kind) -> Position | None:
        """Retention may purge ``kind`` up to here: what every destination carrying it
        delivered. None: no destination carries it."""
        carrying = [
            s.name for s in self.specs.values() if (s.events if kind == "events" else s.alerts)
        ]
        if not carrying:
            return None
        states = {s.name: s for s in await self._store.destination_states()}
        positions = [
            getattr(states[name], kind) if name in states else Position(0, 0) for name in carrying
        ]
        return min(positions)

    # -- operations ------------------------------------------------------------------

    def known(self, name: str) -> DestinationSpec:
        """The configured destination ``name``; NotFound when there is none."""
        spec = self.specs.get(name)
        if spec is None:
            raise NotFound(f"no destination named {name!r} is configured")
        return spec

    async def states(self) -> list[tuple[DestinationSpec, RelayStatus, DestinationState | None]]:
        stored = {s.name: s for s in await self._store.destination_states()}
        return [
            (spec, self.relays[name].status, stored.get(name)) for name, spec in self.specs.items()
        ]

    async def pause(self, name: str, *, paused: bool) -> DestinationState:
        self.known(name)
        state = await self._store.control_destination(name, paused=paused)
        if state is None:
            raise NotFound(f"destination {name!r} has not started relaying yet; try again")
        self.relays[name].wake()
        log.info("destination %s %s", name, "paused" if paused else "resumed")
        return state

    async def replay(
        self, name: str, *, events: Position | None, alerts: Position | None
    ) -> DestinationState:
        """Move the destination back (or forward) so the relay delivers from there on."""
        self.known(name)
        if events is None and alerts is None:
            raise InvalidArgument([FieldViolation("from", "give a position or a time")])
        state = await self._store.control_destination(name, positions=(events, alerts))
        if state is None:
            raise NotFound(f"destination {name!r} has not started relaying yet; try again")
        self.relays[name].wake()
        log.info("destination %s replays", name, extra={"events": events, "alerts": alerts})
        return state

    async def dead_letters(self, name: str, after_id: int, limit: int) -> list[DeadLetter]:
        self.known(name)
        return await self._store.dead_letters(name, after_id, limit)

    async def discard(self, name: str, ids: Sequence[int]) -> int:
        self.known(name)
        return await self._store.drop_dead_letters(name, ids)

    async def retry(self, name: str, letters: Sequence[DeadLetter]) -> int:
        """Deliver dead letters again through a sink of their own; on success they are
        removed. Raises the sink's DeliveryError when the destination still refuses."""
        from eventwire.destinations.sink import Item

        spec = self.known(name)
        if not letters:
            return 0
        sink = make_sink(spec)
        try:
            await sink.start()
            items = [
                Item("event" if lt.kind == "event" else "alert", lt.position.seq, lt.tenant,
                     lt.key, lt.name, lt.payload, lt.committed_at_ms, lt.position.xid)
                for lt in letters
            ]  # fmt: skip
            # A sink that skips what it holds by position (JetStream) must not
            # skip these: they were never delivered, whatever came after them.
            send = getattr(sink, "redeliver", sink.deliver)
            await send(items, timeout=spec.timeout)
        finally:
            await sink.close()
        return await self._store.drop_dead_letters(name, [lt.id for lt in letters])
