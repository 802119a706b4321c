"""Tracking-plan metrics: what each plan version made of the events it checked.

Counted as plain integers on the event loop and exported at scrape time (as
:class:`~eventwire.observability.metrics.RpcStats`), with label sets bounded
whatever clients send: an event name is a label only if the plan declares it
(unplanned names share ``(unplanned)``) and only for the first
:data:`MAX_NAMES` names seen per version (later ones share ``(other)``);
violation kinds (rules) likewise, up to :data:`MAX_RULES`. The
``plan_version`` label keeps one set per version seen by this process.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final, Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

MAX_NAMES: Final = 100
MAX_RULES: Final = 32
MAX_VERSIONS: Final = 4
"""Versions whose counters are kept; older ones are dropped as new ones come."""
UNPLANNED: Final = "(unplanned)"
OTHER: Final = "(other)"


class _Violation(Protocol):
    @property
    def rule(self) -> str: ...


class _Verdict(Protocol):
    @property
    def outcome(self) -> str: ...
    @property
    def planned(self) -> bool: ...
    @property
    def violations(self) -> tuple[_Violation, ...]: ...


class _Version:
    __slots__ = ("checked", "names", "outcomes", "rules", "violations")

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.rules: set[str] = set()
        self.checked: dict[str, int] = {}
        self.outcomes: dict[tuple[str, str], int] = {}
        self.violations: dict[tuple[str, str], int] = {}


class PlanStats:
    """The counters, by plan version (module docstring)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.versions: dict[int, _Version] = {}
        self.current = 0
        if registry is not None:
            registry.register(_PlanCollector(self))

    def installed(self, version: int) -> None:
        self.current = version

    def _version(self, version: int) -> _Version:
        stats = self.versions.get(version)
        if stats is None:
            stats = self.versions[version] = _Version()
            for old in sorted(self.versions)[:-MAX_VERSIONS]:
                del self.versions[old]
        return stats

    @staticmethod
    def _label(stats: _Version, name: str, planned: bool) -> str:
        if not planned:
            return UNPLANNED
        if name in stats.names:
            return name
        if len(stats.names) < MAX_NAMES:
            stats.names.add(name)
            return name
        return OTHER

    def conformed(self, version: int, counts: dict[str, int]) -> None:
        """Events of planned names that conformed, counted by name."""
        stats = self._version(version)
        checked = stats.checked
        for name, count in counts.items():
            label = self._label(stats, name, True)
            checked[label] = checked.get(label, 0) + count

    def checked(self, version: int, name: str, verdict: _Verdict) -> None:
        """One event (or alert) and the plan's verdict on it."""
        stats = self._version(version)
        label = self._label(stats, name, verdict.planned)
        stats.checked[label] = stats.checked.get(label, 0) + 1
        if not verdict.violations and verdict.outcome == "accept":
            return
        outcome = "accepted_with_violations" if verdict.outcome == "accept" else verdict.outcome
        key = (label, outcome)
        stats.outcomes[key] = stats.outcomes.get(key, 0) + 1
        for violation in verdict.violations:
            rule = violation.rule
            if rule not in stats.rules:
                if len(stats.rules) >= MAX_RULES:
                    rule = OTHER
                else:
                    stats.rules.add(rule)
            vkey = (label, rule)
            stats.violations[vkey] = stats.violations.get(vkey, 0) + 1


class _PlanCollector(Collector):
    def __init__(self, stats: PlanStats) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        checked = CounterMetricFamily(
            "eventwire_plan_events_checked",
            "Events checked against a tracking plan version, by event name.",
            labels=("plan_version", "event_name"),
        )
        outcomes = CounterMetricFamily(
            "eventwire_plan_events_flagged",
            "Events a tracking plan version found violations in, by event name and outcome "
            "(accepted_with_violations, quarantine, reject).",
            labels=("plan_version", "event_name", "outcome"),
        )
        violations = CounterMetricFamily(
            "eventwire_plan_violations",
            "Violations found, by plan version, event name and violation kind (rule).",
            labels=("plan_version", "event_name", "rule"),
        )
        for version, stats in list(self._stats.versions.items()):
            v = str(version)
            for name, count in list(stats.checked.items()):
                checked.add_metric((v, name), count)
            for (name, outcome), count in list(stats.outcomes.items()):
                outcomes.add_metric((v, name, outcome), count)
            for (name, rule), count in list(stats.violations.items()):
                violations.add_metric((v, name, rule), count)
        yield from (checked, outcomes, violations)
        yield GaugeMetricFamily(
            "eventwire_plan_version",
            "The tracking plan version in force in this process (0: none).",
            value=self._stats.current,
        )
