"""The tracking plan in force in this process, kept in step with the store.

Plans are data in the store, versioned (docs/tracking-plans.md). Every
process holds the newest version compiled, as one immutable
:class:`~eventwire.ingest.enforcement.ActivePlan` swapped whole, so a request
checks all its events against one version. It learns of a new version from
the store's notification (PostgreSQL's LISTEN, shared with the reads) and, as
a safety net and for SQLite files shared by ``--workers`` processes, by asking
for the newest version number every :data:`POLL_SECONDS`.

A plan that does not parse or compile is refused when applied, with the JSON
pointer of the problem; a stored version this process cannot compile (written
by a newer eventwire, say) is logged and the version in force stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Final

from eventwire._errors import FieldViolation, InvalidArgument
from eventwire.ingest.enforcement import ActivePlan
from eventwire.ingest.plan import PlanError, PlanSpec, compile_plan, diff_plans, parse_plan
from eventwire.observability.plan_metrics import PlanStats
from eventwire.store.base import Store, StoreError
from eventwire.store.quarantine import PlanRecord

log = logging.getLogger("eventwire.plans")

POLL_SECONDS: Final = 1.0


def parse_or_refuse(document: str, source: str) -> PlanSpec:
    """``document`` parsed and checked; :class:`InvalidArgument` naming the pointer."""
    try:
        spec = parse_plan(document, source=source or "<plan>")
        compile_plan(spec)
    except PlanError as exc:
        raise InvalidArgument([FieldViolation(f"document{exc.pointer}", exc.reason)]) from None
    return spec


class PlanState:
    """The plan in force (module docstring); :attr:`active` is None while there is none."""

    def __init__(
        self,
        store: Store,
        *,
        stats: PlanStats | None = None,
        poll: float = POLL_SECONDS,
        clock: Callable[[], int],
    ) -> None:
        self._store = store
        self._stats = stats
        self._poll = poll
        self._clock = clock
        self.active: ActivePlan | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._refused = 0
        """A stored version that would not compile: not retried until a newer one."""

    @property
    def version(self) -> int:
        active = self.active
        return 0 if active is None else active.version

    async def start(self) -> None:
        """Load the newest version, then follow the store."""
        await self.refresh()
        self._store.watch_plans(self._wake.set)
        self._task = asyncio.get_running_loop().create_task(
            self._follow(), name="eventwire-plan-follower"
        )

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _follow(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll)
            self._wake.clear()
            try:
                newest = await self._store.plan_version()
                if newest not in (self.version, self._refused):
                    await self.refresh()
            except StoreError as exc:
                log.warning("cannot check for a new tracking plan: %s", exc)

    async def refresh(self) -> None:
        """Install the newest stored version if it is not the one in force."""
        record = await self._store.get_plan()
        if record is not None and record.version != self.version:
            self._install(record)

    def _install(self, record: PlanRecord) -> None:
        try:
            spec = parse_plan(record.document, source=f"plan version {record.version}")
            compiled = compile_plan(spec)
        except PlanError as exc:
            self._refused = record.version
            log.error(  # noqa: TRY400 - the pointer says it all
                "tracking plan version %d cannot be used; version %d stays in force: %s",
                record.version,
                self.version,
                exc,
            )
            return
        self.active = ActivePlan(
            record.version, spec, compiled, record.applied_at, record.applied_by, self._stats
        )
        if self._stats is not None:
            self._stats.installed(record.version)
        log.info("tracking plan version %d in force", record.version)

    async def apply(
        self, document: str, source: str, applied_by: str, *, dry_run: bool = False
    ) -> tuple[int, bool, list[str]]:
        """Check ``document`` and store it as the next version unless it equals the
        one in force: (version in force, whether it changed, the changes)."""
        spec = parse_or_refuse(document, source)
        await self.refresh()
        current = self.active
        changes = diff_plans(None if current is None else current.spec, spec)
        canonical = spec.canonical_json().decode()
        if current is not None and current.spec.canonical_json().decode() == canonical:
            return current.version, False, []
        if dry_run:
            return self.version, False, changes
        version = await self._store.put_plan(canonical, self._clock(), applied_by)
        record = PlanRecord(version, canonical, self._clock(), applied_by)
        self._install(record)
        return version, True, changes
