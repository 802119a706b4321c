"""Client-side Prometheus metrics: attempts, retries, breakers and trackers.

Pass one :class:`ClientMetrics` to every client and tracker of an application
(``metrics=``); give it ``prometheus_client.REGISTRY`` to export them with the
application's other metrics, or a registry of your own.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Final, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from eventwire.client._breaker import CircuitBreaker, Transition

_STATE_VALUE: Final = {"closed": 0, "half_open": 1, "open": 2}

_TRACKER_COUNTERS: Final = (
    "tracked",
    "recovered",
    "queued",
    "spooled",
    "spilled",
    "sent",
    "acked",
    "accepted",
    "duplicate",
    "rejected",
    "dropped",
)
_TRACKER_GAUGES: Final = (
    "outstanding",
    "memory_events",
    "memory_bytes",
    "spool_events",
    "spool_bytes",
)


class _Stats(Protocol):
    """What is read of a :class:`~eventwire.client.TrackerStats` besides the numbers
    named above (read by name); a protocol, because the tracker imports this module."""

    @property
    def drops(self) -> Mapping[str, int]: ...


class _HasStats(Protocol):
    @property
    def target(self) -> str: ...

    @property
    def stats(self) -> _Stats: ...


class ClientMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.attempts = Counter(
            "eventwire_client_attempts",
            "RPC attempts made by eventwire clients, by method and status code.",
            ("method", "code"),
            registry=r,
        )
        self.retries = Counter(
            "eventwire_client_retries",
            "Retries scheduled (after backoff or the server's pushback), by method.",
            ("method",),
            registry=r,
        )
        self.breaker_transitions = Counter(
            "eventwire_client_breaker_transitions",
            "Circuit breaker state changes, by breaker and new state.",
            ("breaker", "state"),
            registry=r,
        )
        self.breaker_state = Gauge(
            "eventwire_client_breaker_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
            ("breaker",),
            registry=r,
        )
        self._trackers = _TrackerCollector()
        r.register(self._trackers)
        self._breakers: weakref.WeakSet[CircuitBreaker] = weakref.WeakSet()

    def watch_breaker(self, breaker: CircuitBreaker) -> None:
        """Export ``breaker``'s state and transitions (once, however many clients share it)."""
        if breaker in self._breakers:
            return
        self._breakers.add(breaker)
        name = breaker.name or "default"
        self.breaker_state.labels(name).set(_STATE_VALUE[breaker.state.value])

        def record(transition: Transition) -> None:
            self.breaker_transitions.labels(name, transition.after.value).inc()
            self.breaker_state.labels(name).set(_STATE_VALUE[transition.after.value])

        breaker.add_hook(record)

    def watch_tracker(self, tracker: _HasStats) -> None:
        """Export ``tracker.stats`` (read at scrape time, so it costs nothing in between).

        Trackers given ``ClientConfig(metrics=...)`` are watched from the start.
        """
        if all(t is not tracker for t in self._trackers.trackers):
            self._trackers.trackers.append(tracker)


class _TrackerCollector(Collector):
    def __init__(self) -> None:
        self.trackers: list[_HasStats] = []

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        counters = {
            name: CounterMetricFamily(
                f"eventwire_tracker_{name}", f"Tracker events: {name}.", labels=["target"]
            )
            for name in _TRACKER_COUNTERS
        }
        gauges = {
            name: GaugeMetricFamily(
                f"eventwire_tracker_{name}", f"Tracker now: {name}.", labels=["target"]
            )
            for name in _TRACKER_GAUGES
        }
        drops = CounterMetricFamily(
            "eventwire_tracker_dropped_by_reason",
            "Tracker events dropped, by reason (they sum to eventwire_tracker_dropped).",
            labels=["target", "reason"],
        )
        for tracker in self.trackers:
            stats = tracker.stats
            for name, family in counters.items():
                family.add_metric([tracker.target], getattr(stats, name))
            for name, gauge in gauges.items():
                gauge.add_metric([tracker.target], getattr(stats, name))
            for reason, n in stats.drops.items():
                drops.add_metric([tracker.target, reason], n)
        yield from counters.values()
        yield drops
        yield from gauges.values()
