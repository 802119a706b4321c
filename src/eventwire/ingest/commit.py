"""One group commit: a batch of queued requests in one store transaction, and the replies.

:class:`GroupCommit` is the half of the ingest pipeline that runs a batch once
it has been taken from the queue (:mod:`eventwire.ingest.pipeline` decides
when, and with whom): one tracing span per batch rather than per request, one
transaction, the callers' futures resolved with what the store reports, a
batch that one request's rows make fail retried request by request, the
store's health reported on change, and the commit rate kept for the
``grpc-retry-pushback-ms`` hint.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanContext, Status, StatusCode, Tracer

from eventwire._errors import ServiceError, Unavailable
from eventwire.observability.metrics import ServerMetrics
from eventwire.observability.server_spans import linked_span
from eventwire.store.base import (
    AlertRow,
    CommitResult,
    EventValues,
    Store,
    StoreGone,
    StoreUnavailable,
)
from eventwire.store.quarantine import QuarantineRow

log = logging.getLogger("eventwire.pipeline")


class Item:
    """One request waiting in the queue: its rows, its caller's future, its span."""

    __slots__ = ("alert", "events", "future", "quarantine", "queued_ns", "span", "weight")

    def __init__(
        self,
        events: Sequence[EventValues] | None,
        alert: AlertRow | None,
        future: asyncio.Future[int | str],
        quarantine: Sequence[QuarantineRow] = (),
    ) -> None:
        self.events = events
        self.alert = alert
        self.future = future
        self.quarantine = quarantine
        """Rows the tracking plan put apart, committed with ``events``."""
        self.weight = (len(events) + len(quarantine)) if events is not None else 1
        self.span: SpanContext | None = None
        self.queued_ns = 0


def split(
    batch: list[Item],
) -> tuple[
    list[Item], list[Sequence[EventValues]], list[Item], list[AlertRow], int, list[QuarantineRow]
]:
    """In one pass: the event items and their rows, the alert items and theirs, all
    rows, and the quarantined rows."""
    event_items: list[Item] = []
    events: list[Sequence[EventValues]] = []
    alert_items: list[Item] = []
    alerts: list[AlertRow] = []
    quarantine: list[QuarantineRow] = []
    rows = 0
    for item in batch:
        rows += item.weight
        if item.events is not None:
            event_items.append(item)
            events.append(item.events)
            if item.quarantine:
                quarantine.extend(item.quarantine)
        elif item.alert is not None:
            alert_items.append(item)
            alerts.append(item.alert)
    return event_items, events, alert_items, alerts, rows, quarantine


class GroupCommit:
    """Commits batches of :class:`Item` and answers their callers (module docstring).

    The pipeline's base class rather than an object it holds: a lone caller
    commits its own request through :meth:`_commit`, and that path stays one
    method call long.
    """

    def __init__(
        self,
        store: Store,
        on_store_health: Callable[[bool, StoreUnavailable | None], None] | None,
        metrics: ServerMetrics | None,
        tracer: Tracer | None,
    ) -> None:
        self._store = store
        self._on_store_health = on_store_health
        self._metrics = metrics
        self._tracer = tracer
        self._healthy = True
        # Smoothed commit throughput (rows per ms), for the pipeline's pushback hint.
        self._rate = 0.0

    async def _commit(self, batch: list[Item]) -> None:
        sampled = [item for item in batch if item.span is not None]
        if self._tracer is None or not sampled:
            await self._commit_batch(batch)
            return
        # One span per group commit, not per request, and none for its
        # transaction: its cost is shared by the batch. It hangs under the first
        # sampled request's span, links to all of them, and runs from when that
        # request entered the ingest queue until the batch is durable; a
        # "commit" event marks each transaction's start.
        links = [item.span for item in sampled if item.span is not None]
        span = linked_span(
            self._tracer,
            "eventwire.ingest.batch",
            parent=links[0],
            links=links,
            attributes={
                "eventwire.requests": len(batch),
                "eventwire.rows": sum(item.weight for item in batch),
            },
            start_time=sampled[0].queued_ns,
        )
        # Current while committing, so that log lines carry the trace id.
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            await self._commit_batch(batch, span)
        finally:
            otel_context.detach(token)
            span.end()

    async def _commit_batch(self, batch: list[Item], span: Span | None = None) -> None:
        event_items, events, alert_items, alerts, rows, quarantine = split(batch)
        metrics = self._metrics
        started = time.monotonic()
        try:
            result = await self._store_commit(events, alerts, span, quarantine)
        except StoreUnavailable as exc:
            self._set_health(ok=False, error=exc)
            log.warning("commit of %d requests failed: storage unavailable: %s", len(batch), exc)
            # A lost database is for the operator to fix: the reply says which.
            reason = f": {exc}" if isinstance(exc, StoreGone) else "; retry later"
            self._fail(batch, Unavailable(f"storage is unavailable{reason}"))
            if metrics is not None:
                metrics.commits.failed("unavailable")
            return
        except Exception:
            if metrics is not None:
                metrics.commits.failed("error")
            if len(batch) > 1:
                # One request's rows can fail a whole group commit (a value the
                # database refuses); commit them one by one so only it fails.
                log.warning("commit of %d requests failed; isolating the cause", len(batch))
                for item in batch:
                    await self._commit_batch([item], span)
                return
            log.exception("commit failed")
            self._fail(batch, ServiceError("commit failed"))
            return
        self._set_health(ok=True)
        elapsed = time.monotonic() - started
        if metrics is not None:
            metrics.commits.committed(
                rows - len(quarantine), elapsed, sum(result.inserted), len(alert_items)
            )
        elapsed_ms = max(elapsed * 1000, 0.001)
        self._rate = (
            rows / elapsed_ms if self._rate <= 0 else 0.8 * self._rate + 0.2 * rows / elapsed_ms
        )
        for item, inserted in zip(event_items, result.inserted, strict=True):
            if not item.future.done():  # the caller may have been cancelled meanwhile
                item.future.set_result(inserted)
        for item, tracking_id in zip(alert_items, result.tracking_ids, strict=True):
            if not item.future.done():
                item.future.set_result(tracking_id)

    async def _store_commit(
        self,
        events: list[Sequence[EventValues]],
        alerts: list[AlertRow],
        span: Span | None,
        quarantine: list[QuarantineRow],
    ) -> CommitResult:
        if span is None:
            if quarantine:
                return await self._store.commit(events, alerts, quarantine)
            return await self._store.commit(events, alerts)
        # An event, not a child span, per transaction: a batch that a refused row
        # splits (see _commit_batch) shows one more per request committed alone.
        span.add_event("commit", {"eventwire.rows": sum(map(len, events)) + len(alerts)})
        try:
            if quarantine:
                return await self._store.commit(events, alerts, quarantine)
            return await self._store.commit(events, alerts)
        except Exception as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise

    @staticmethod
    def _fail(batch: list[Item], error: Exception) -> None:
        for item in batch:
            if not item.future.done():
                item.future.set_exception(error)

    def _set_health(self, *, ok: bool, error: StoreUnavailable | None = None) -> None:
        if ok != self._healthy or isinstance(error, StoreGone):
            self._healthy = ok
            if self._on_store_health is not None:
                self._on_store_health(ok, error)
