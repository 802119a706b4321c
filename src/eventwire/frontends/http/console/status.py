"""The Server page's numbers: what ``eventwire top`` shows, read in process.

``eventwire top`` scrapes /metrics twice and diffs the text; the console asks
the gateway instead, which reads the same counters (:class:`ServerMetrics`)
directly, so no browser ever parses Prometheus text. Rates and commit-latency
quantiles are over the window between two snapshots at least
:data:`WINDOW_SECONDS` apart, shared by every viewer: any number of open
Server pages cost one snapshot a second, not one each.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from prometheus_client import CollectorRegistry

from eventwire.observability.metrics import ServerMetrics, quantile

WINDOW_SECONDS: Final = 1.0
STALE_SECONDS: Final = 10.0
"""A snapshot older than this (nobody looked for a while) starts a new window
rather than reporting an average over minutes as the current rate."""


@dataclass(frozen=True, slots=True)
class _Snapshot:
    at: float
    commits: int
    stored: int
    latency: tuple[int, ...]
    """Commits per latency bucket (not cumulative), as :class:`Buckets` counts them."""


def _gauge(metrics: ServerMetrics, name: str) -> float:
    gauge = getattr(metrics, name)
    return float(sum(sample.value for family in gauge.collect() for sample in family.samples))


class ServerStatus:
    """The JSON the Server page polls (see :meth:`read`)."""

    def __init__(
        self,
        metrics: ServerMetrics | None,
        ready: Callable[[], bool],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Without ``metrics`` (a gateway built without them) only health is known."""
        self._clock = clock
        self._metrics = metrics or ServerMetrics(CollectorRegistry())
        self._measured = metrics is not None
        self._ready = ready
        self._last = self._snapshot()
        self._rates: dict[str, float | None] = {
            "commitsPerSecond": 0.0,
            "eventsPerSecond": 0.0,
            "commitP50Ms": None,
            "commitP99Ms": None,
            "windowSeconds": 0.0,
        }

    def _snapshot(self) -> _Snapshot:
        commits = self._metrics.commits
        return _Snapshot(
            self._clock(), commits.results["ok"], commits.stored, tuple(commits.seconds.counts)
        )

    def _advance(self) -> None:
        now = self._snapshot()
        before = self._last
        dt = now.at - before.at
        if dt < WINDOW_SECONDS:
            return
        if dt > STALE_SECONDS:
            self._last = now
            self._rates = {**self._rates, "windowSeconds": 0.0}
            return
        bounds = (*self._metrics.commits.seconds.bounds, math.inf)
        cumulative: list[tuple[float, float]] = []
        total = 0
        for bound, new, old in zip(bounds, now.latency, before.latency, strict=True):
            total += max(new - old, 0)
            cumulative.append((bound, float(total)))

        def ms(q: float) -> float | None:
            value = quantile(cumulative, q)
            return None if math.isnan(value) else round(value * 1000, 3)

        self._rates = {
            "commitsPerSecond": max(now.commits - before.commits, 0) / dt,
            "eventsPerSecond": max(now.stored - before.stored, 0) / dt,
            "commitP50Ms": ms(0.5),
            "commitP99Ms": ms(0.99),
            "windowSeconds": round(dt, 3),
        }
        self._last = now

    def read(self) -> dict[str, object]:
        """Health, what is held now, and the rates of the latest window."""
        if not self._measured:
            return {"serving": self._ready()}
        self._advance()
        m = self._metrics
        return {
            "serving": self._ready(),
            "storeUp": _gauge(m, "store_up") >= 1,
            "draining": _gauge(m, "draining") >= 1,
            "inflightBytes": int(_gauge(m, "inflight_bytes")),
            "queueRows": int(_gauge(m, "queue_rows")),
            "eventsStored": m.commits.stored,
            "duplicates": m.commits.duplicates,
            "alertsStored": m.commits.alerts,
            "commits": m.commits.results["ok"],
            "commitFailures": m.commits.results["unavailable"] + m.commits.results["error"],
            **self._rates,
        }
