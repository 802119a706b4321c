"""The read filters both stores build: conditions and their parameters.

One place decides what each field of a query or filter means in SQL; each
store names its driver's placeholder (``?`` for sqlite3, ``%s`` for psycopg)
and, where its planner needs it, how a column is spelled in a condition
(``concat(tenant)`` keeps PostgreSQL's planner on the commit-order index).
Columns and operators are constants: only values travel as parameters.
"""

from __future__ import annotations

import dataclasses
from typing import Final

from eventwire.store.base import AlertFilter, EventAggregation, EventQuery
from eventwire.store.quarantine import QuarantineFilter

QMARK: Final = "?"
PYFORMAT: Final = "%s"


@dataclasses.dataclass
class Conditions:
    """``AND``-ed conditions in one placeholder style, with their parameters in order."""

    mark: str
    clauses: list[str] = dataclasses.field(default_factory=list)
    params: list[str | int] = dataclasses.field(default_factory=list)

    def add(self, clause: str, *values: str | int) -> Conditions:
        """``clause`` with ``{}`` for each placeholder."""
        self.clauses.append(clause.format(*([self.mark] * len(values))))
        self.params.extend(values)
        return self

    def equal(self, column: str, value: str | int | None) -> Conditions:
        """``column = value``, unless the value is unset (empty, zero or None)."""
        if value:
            self.add(f"{column} = {{}}", value)
        return self

    def time_range(self, start: int, end: int) -> Conditions:
        """``start <= ts < end``; an unset bound is no bound."""
        if start:
            self.add("ts >= {}", start)
        if end:
            self.add("ts < {}", end)
        return self

    def sql(self) -> str:
        return " AND ".join(self.clauses)


def events_counted(mark: str, tenant: str, query: EventQuery) -> Conditions:
    """The events ``count_events`` counts."""
    where = Conditions(mark).add("tenant = {}", tenant)
    where.equal("event_name", query.event_name).equal("user_id", query.user_id)
    return where.time_range(query.start, query.end)


def events_read(
    where: Conditions,
    tenant: str | None,
    query: EventQuery | EventAggregation,
    *,
    spelled: str = "{}",
) -> Conditions:
    """The events ``read_events`` and ``aggregate_events`` read, added to ``where``;
    ``spelled`` wraps each column name (``concat({})``); tenant None: every tenant."""
    if tenant is not None:
        where.add(f"{spelled.format('tenant')} = {{}}", tenant)
    where.equal(spelled.format("event_name"), query.event_name)
    if isinstance(query, EventQuery):
        where.equal(spelled.format("user_id"), query.user_id)
    return where.time_range(query.start, query.end)


def alerts_read(where: Conditions, alert: AlertFilter) -> Conditions:
    """The alerts ``read_alerts`` reads, added to ``where``."""
    if alert.tenant is not None:
        where.add("tenant = {}", alert.tenant)
    where.equal("device_id", alert.device_id).equal("alert_type", alert.alert_type)
    if alert.min_severity:
        where.add("severity >= {}", alert.min_severity)
    return where.time_range(alert.start, alert.end)


def quarantined(where: Conditions, q: QuarantineFilter, has_rule: str) -> Conditions:
    """The quarantined rows ``q`` selects, added to ``where``; ``has_rule``: the
    store's condition, with one ``{}``, that a row has a violation of a rule."""
    where.add("tenant = {}", q.tenant).equal("kind", q.kind).equal("name", q.name)
    if q.rule:
        where.add(has_rule, q.rule)
    if q.since:
        where.add("quarantined_at >= {}", q.since)
    if q.until:
        where.add("quarantined_at < {}", q.until)
    return where
