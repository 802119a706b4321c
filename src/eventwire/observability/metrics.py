"""Prometheus metrics, one registry per server (no process-global state).

Names follow the conventions dashboards already know: ``grpc_server_*`` as in
go-grpc-prometheus / grpc-ecosystem, ``eventwire_*`` for the ingest path, and
the client library's standard ``process_*`` (RSS, CPU, open descriptors) and
``python_*`` (GC, version) collectors. Each registry belongs to one process, so
with ``--workers`` every worker's /metrics describes that worker alone; they
read /proc and the GC's counters at scrape time and cost nothing per request.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Final, Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from eventwire.observability.plan_metrics import PlanStats

# RPC latencies on the seeds' scale: a 200 ms analytics deadline, 2 s telemetry.
_LATENCY_BUCKETS: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.2,
    0.5,
    1.0,
    2.0,
    5.0,
)
_RPC_LABELS: Final = ("grpc_service", "grpc_method", "grpc_type")
_ROWS_BUCKETS: Final = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


def quantile(buckets: Iterable[tuple[float, float]], q: float) -> float:
    """The q-quantile of a cumulative histogram ``[(upper bound, count), ...]``.

    Linear within the bucket that holds it, as Prometheus' histogram_quantile;
    NaN when the histogram is empty.
    """
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return math.nan
    rank = q * ordered[-1][1]
    lower, below = 0.0, 0.0
    for upper, count in ordered:
        if count >= rank:
            if math.isinf(upper):
                return lower
            share = (rank - below) / (count - below) if count > below else 0.0
            return lower + (upper - lower) * share
        lower, below = upper, count
    return lower


class ServerMetrics:
    """Every metric one eventwire server exports, registered in :attr:`registry`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry(auto_describe=True)
        if registry is None:
            # A registry passed in (the global one, say) may have them already.
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
            GCCollector(registry=r)
        self._rpcs: dict[tuple[str, str, str], RpcStats] = {}
        self._destinations: _DestinationCollector | None = None
        r.register(_RpcCollector(self._rpcs))
        self.http_handled = Counter(
            "eventwire_http_requests",
            "JSON/HTTP gateway requests, by route and status.",
            ("route", "code"),
            registry=r,
        )
        self.http_refused = Counter(
            "eventwire_http_refused",
            "HTTP connections refused by a limit (gateway and /metrics), by reason: "
            "connections, header_bytes, header_timeout, body_timeout, body_bytes, "
            "transfer_encoding.",
            ("listener", "reason"),
            registry=r,
        )
        self.queue_rows = Gauge(
            "eventwire_ingest_queue_rows",
            "Rows waiting for, or in, a group commit.",
            registry=r,
        )
        self.commits = CommitStats()
        r.register(_CommitCollector(self.commits))
        self.events_rejected = Counter(
            "eventwire_events_rejected", "Events refused by validation.", registry=r
        )
        self.overloaded = Counter(
            "eventwire_overload_rejections",
            "Requests refused with RESOURCE_EXHAUSTED because the ingest queue was full.",
            registry=r,
        )
        self.store_up = Gauge(
            "eventwire_store_up", "1 while storage accepts writes, else 0.", registry=r
        )
        self.inflight_bytes = Gauge(
            "eventwire_inflight_bytes",
            "Request bytes held by calls and streams now (the --max-inflight-bytes budget).",
            registry=r,
        )
        self.store_lost = Counter(
            "eventwire_store_lost",
            "Times storage was found deleted, replaced or dropped while serving "
            "(writes stay refused until a restart).",
            registry=r,
        )
        self.draining = Gauge(
            "eventwire_draining", "1 while the server drains for shutdown.", registry=r
        )
        self.store_up.set(1)
        self.plans = PlanStats(r)
        """What each tracking plan version made of the events it checked."""

    def rpc(self, service: str, method: str, kind: str) -> RpcStats:
        """The counters of one RPC method (made once, at registration)."""
        return self._rpcs.setdefault((service, method, kind), RpcStats())

    def watch_queue(self, pending: Callable[[], int]) -> None:
        self.queue_rows.set_function(lambda: float(pending()))

    def watch_inflight(self, held: Callable[[], int]) -> None:
        self.inflight_bytes.set_function(lambda: float(held()))

    def watch_destinations(self, statuses: Callable[[], Sequence[DestinationStats]]) -> None:
        """Export each destination relay's numbers, read at scrape time."""
        if self._destinations is None:
            self._destinations = _DestinationCollector(statuses)
            self.registry.register(self._destinations)


class DestinationStats(Protocol):
    """What a destination relay reports (``eventwire.destinations.relay.RelayStatus``)."""

    name: str
    state: str
    delivered: int
    retried: int
    dead_lettered: int
    lag_rows: int
    lag_seconds: float
    breaker: str


_BREAKER_VALUE: Final = {"closed": 0, "half_open": 1, "open": 2}
DESTINATION_STATES: Final = ("starting", "relaying", "standby", "paused", "retrying", "stopped")


class _DestinationCollector(Collector):
    def __init__(self, statuses: Callable[[], Sequence[DestinationStats]]) -> None:
        self._statuses = statuses

    def collect(self) -> Iterator[Metric]:
        label = ("destination",)
        counters = {
            "delivered": CounterMetricFamily(
                "eventwire_destination_delivered",
                "Rows a destination confirmed.",
                labels=label,
            ),
            "retried": CounterMetricFamily(
                "eventwire_destination_retried",
                "Failed delivery attempts that were retried (or will be).",
                labels=label,
            ),
            "dead_lettered": CounterMetricFamily(
                "eventwire_destination_dead_lettered",
                "Rows moved to a destination's dead letters after repeated refusals.",
                labels=label,
            ),
        }
        lag_rows = GaugeMetricFamily(
            "eventwire_destination_lag_rows",
            "Committed rows the destination has not delivered yet (relaying replica only).",
            labels=label,
        )
        lag_seconds = GaugeMetricFamily(
            "eventwire_destination_lag_seconds",
            "Age of the oldest row not delivered yet, in seconds (0: caught up).",
            labels=label,
        )
        breaker = GaugeMetricFamily(
            "eventwire_destination_breaker_state",
            "The destination's circuit breaker: 0 closed, 1 half-open, 2 open.",
            labels=label,
        )
        state = GaugeMetricFamily(
            "eventwire_destination_state",
            "1 for the relay's current state in this process (relaying, standby, paused, "
            "retrying, starting, stopped).",
            labels=(*label, "state"),
        )
        for status in self._statuses():
            for attribute, family in counters.items():
                family.add_metric((status.name,), getattr(status, attribute))
            lag_rows.add_metric((status.name,), status.lag_rows)
            lag_seconds.add_metric((status.name,), status.lag_seconds)
            breaker.add_metric((status.name,), _BREAKER_VALUE.get(status.breaker, 0))
            for name in DESTINATION_STATES:
                state.add_metric((status.name, name), float(status.state == name))
        yield from (*counters.values(), lag_rows, lag_seconds, breaker, state)


class RpcStats:
    """The ``grpc_server_*`` numbers of one method, as plain integers.

    Updated on the event loop for every call, read at scrape time by
    :class:`_RpcCollector`: a prometheus-client child costs a lock and a label
    lookup per update (~1.5 us each, four per call), this costs attribute
    arithmetic. Only the loop writes; a scrape from another thread may see one
    call half-counted, which the next scrape corrects.
    """

    __slots__ = ("handled", "in_flight", "seconds", "started")

    def __init__(self) -> None:
        self.started = 0
        self.in_flight = 0
        self.handled: dict[str, int] = {}
        self.seconds = Buckets(_LATENCY_BUCKETS)

    def begin(self) -> None:
        self.started += 1
        self.in_flight += 1

    def end(self, code: str, seconds: float) -> None:
        self.in_flight -= 1
        self.handled[code] = self.handled.get(code, 0) + 1
        self.seconds.observe(seconds)


class Buckets:
    """A histogram's numbers, for a collector to export (see :class:`RpcStats`)."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # Buckets are upper bounds (``le``): the first bound at or above the value.
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def exported(self) -> list[tuple[str, float]]:
        """Cumulative counts by ``le``, as a histogram family takes them."""
        cumulative = 0
        out: list[tuple[str, float]] = []
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            cumulative += count
            out.append(("+Inf" if bound == float("inf") else str(bound), cumulative))
        return out


class CommitStats:
    """The ingest pipeline's per-commit numbers, as plain integers (see :class:`RpcStats`)."""

    __slots__ = ("alerts", "duplicates", "results", "rows", "seconds", "stored")

    def __init__(self) -> None:
        self.results = {"ok": 0, "unavailable": 0, "error": 0}
        self.rows = Buckets(_ROWS_BUCKETS)
        self.seconds = Buckets(_LATENCY_BUCKETS)
        self.stored = 0
        self.duplicates = 0
        self.alerts = 0

    def committed(self, rows: int, seconds: float, stored: int, alerts: int) -> None:
        self.results["ok"] += 1
        self.rows.observe(rows)
        self.seconds.observe(seconds)
        self.stored += stored
        self.duplicates += rows - alerts - stored
        self.alerts += alerts

    def failed(self, result: str) -> None:
        self.results[result] += 1


class _CommitCollector(Collector):
    def __init__(self, stats: CommitStats) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        s = self._stats
        commits = CounterMetricFamily(
            "eventwire_commits",
            "Group commits, by result (ok, unavailable, error).",
            labels=("result",),
        )
        for result, count in list(s.results.items()):
            commits.add_metric((result,), count)
        rows = HistogramMetricFamily(
            "eventwire_commit_rows", "Rows per group commit (events and alerts)."
        )
        rows.add_metric((), s.rows.exported(), s.rows.sum)
        seconds = HistogramMetricFamily(
            "eventwire_commit_seconds", "Duration of a group commit, fsync included, in seconds."
        )
        seconds.add_metric((), s.seconds.exported(), s.seconds.sum)
        yield from (commits, rows, seconds)
        yield CounterMetricFamily("eventwire_events_stored", "Events newly stored.", value=s.stored)
        yield CounterMetricFamily(
            "eventwire_events_duplicate",
            "Events acknowledged without storing: their event_id was already stored.",
            value=s.duplicates,
        )
        yield CounterMetricFamily(
            "eventwire_alerts_stored",
            "Alerts acknowledged (stored, or a repeated key).",
            value=s.alerts,
        )


class _RpcCollector(Collector):
    def __init__(self, rpcs: dict[tuple[str, str, str], RpcStats]) -> None:
        self._rpcs = rpcs

    def collect(self) -> Iterator[Metric]:
        started = CounterMetricFamily(
            "grpc_server_started", "RPCs started on the server.", labels=_RPC_LABELS
        )
        handled = CounterMetricFamily(
            "grpc_server_handled",
            "RPCs completed on the server, by status code.",
            labels=(*_RPC_LABELS, "grpc_code"),
        )
        seconds = HistogramMetricFamily(
            "grpc_server_handling_seconds",
            "Time from the start of an RPC to its status, in seconds.",
            labels=_RPC_LABELS,
        )
        in_flight = GaugeMetricFamily(
            "eventwire_rpcs_in_flight", "RPCs being served now.", labels=("grpc_method",)
        )
        for labels, stats in list(self._rpcs.items()):
            started.add_metric(labels, stats.started)
            for code, count in list(stats.handled.items()):
                handled.add_metric((*labels, code), count)
            seconds.add_metric(labels, stats.seconds.exported(), stats.seconds.sum)
            in_flight.add_metric((labels[1],), stats.in_flight)
        yield from (started, handled, seconds, in_flight)
