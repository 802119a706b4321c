"""``eventwire top``: a live terminal view of a running server, from its /metrics.

Two scrapes ``interval`` seconds apart give rates; histogram buckets give
latency quantiles over the same window. The maths is pure (:func:`diff`) so it
can be checked exactly; :func:`render` only lays it out.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import httpx
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from eventwire.observability.metrics import quantile

_SPARKS = "▁▂▃▄▅▆▇█"

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Scrape:
    at: float
    """Monotonic time of the scrape, in seconds."""
    values: dict[tuple[str, Labels], float]

    def total(self, name: str, **match: str) -> float:
        return sum(
            v
            for (n, labels), v in self.values.items()
            if n == name and all(dict(labels).get(k) == want for k, want in match.items())
        )


def parse(text: str, at: float) -> Scrape:
    values: dict[tuple[str, Labels], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return Scrape(at, values)


@dataclass(frozen=True)
class MethodStats:
    rate: float
    """RPCs started per second."""
    p50_ms: float
    p99_ms: float
    total: int


@dataclass(frozen=True)
class View:
    events_per_s: float
    events_total: int
    duplicates_total: int
    rejected_total: int
    queue_rows: int
    store_up: bool
    draining: bool
    methods: dict[str, MethodStats]
    errors: dict[str, int]
    """Non-OK status codes seen since the server started, by code."""
    destinations: dict[str, DestinationView] = field(default_factory=dict)


@dataclass(frozen=True)
class DestinationView:
    state: str
    delivered_per_s: float
    delivered: int
    retried: int
    dead_lettered: int
    lag_rows: int
    lag_seconds: float
    breaker: str


def diff(before: Scrape, after: Scrape) -> View:
    """What happened between two scrapes (rates) and since start (totals)."""
    dt = max(after.at - before.at, 1e-9)

    def delta(name: str, **match: str) -> float:
        return max(after.total(name, **match) - before.total(name, **match), 0.0)

    methods: dict[str, MethodStats] = {}
    names = {
        dict(labels)["grpc_method"]
        for (n, labels) in after.values
        if n == "grpc_server_started_total"
    }
    for method in sorted(names):
        buckets: dict[float, float] = defaultdict(float)
        for (n, labels), value in after.values.items():
            tags = dict(labels)
            if n == "grpc_server_handling_seconds_bucket" and tags.get("grpc_method") == method:
                old = before.values.get((n, labels), 0.0)
                buckets[float(tags["le"])] += max(value - old, 0.0)
        pairs = list(buckets.items())
        methods[method] = MethodStats(
            rate=delta("grpc_server_started_total", grpc_method=method) / dt,
            p50_ms=quantile(pairs, 0.5) * 1000,
            p99_ms=quantile(pairs, 0.99) * 1000,
            total=int(after.total("grpc_server_started_total", grpc_method=method)),
        )
    errors: dict[str, int] = defaultdict(int)
    for (n, labels), value in after.values.items():
        code = dict(labels).get("grpc_code", "OK")
        if n == "grpc_server_handled_total" and code != "OK" and value > 0:
            errors[code] += int(value)
    return View(
        destinations=_destinations(after, delta, dt),
        events_per_s=delta("eventwire_events_stored_total") / dt,
        events_total=int(after.total("eventwire_events_stored_total")),
        duplicates_total=int(after.total("eventwire_events_duplicate_total")),
        rejected_total=int(after.total("eventwire_events_rejected_total")),
        queue_rows=int(after.total("eventwire_ingest_queue_rows")),
        store_up=after.total("eventwire_store_up") >= 1,
        draining=after.total("eventwire_draining") >= 1,
        methods=methods,
        errors=dict(sorted(errors.items())),
    )


_BREAKER: Final = {0: "closed", 1: "half-open", 2: "open"}


def _destinations(
    after: Scrape, delta: Callable[..., float], dt: float
) -> dict[str, DestinationView]:
    names = sorted(
        {
            dict(labels)["destination"]
            for (n, labels) in after.values
            if n == "eventwire_destination_lag_rows"
        }
    )
    out: dict[str, DestinationView] = {}
    for name in names:
        states = [
            dict(labels)["state"]
            for (n, labels), value in after.values.items()
            if n == "eventwire_destination_state"
            and dict(labels).get("destination") == name
            and value >= 1
        ]
        out[name] = DestinationView(
            state=states[0] if states else "?",
            delivered_per_s=delta("eventwire_destination_delivered_total", destination=name) / dt,
            delivered=int(after.total("eventwire_destination_delivered_total", destination=name)),
            retried=int(after.total("eventwire_destination_retried_total", destination=name)),
            dead_lettered=int(
                after.total("eventwire_destination_dead_lettered_total", destination=name)
            ),
            lag_rows=int(after.total("eventwire_destination_lag_rows", destination=name)),
            lag_seconds=after.total("eventwire_destination_lag_seconds", destination=name),
            breaker=_BREAKER.get(
                int(after.total("eventwire_destination_breaker_state", destination=name)), "?"
            ),
        )
    return out


def sparkline(values: Iterable[float]) -> str:
    points = list(values)
    top = max(points, default=0.0)
    if top <= 0:
        return _SPARKS[0] * len(points)
    return "".join(
        _SPARKS[min(int(v / top * (len(_SPARKS) - 1)), len(_SPARKS) - 1)] for v in points
    )


@dataclass
class History:
    size: int = 120
    events_per_s: deque[float] = field(default_factory=deque)

    def add(self, view: View) -> None:
        self.events_per_s.append(view.events_per_s)
        while len(self.events_per_s) > self.size:
            self.events_per_s.popleft()


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def render(target: str, view: View, history: History) -> Group:
    state = "[red]DRAINING[/]" if view.draining else "[green]serving[/]"
    store = "[green]up[/]" if view.store_up else "[red]DOWN[/]"
    head = Text.from_markup(
        f"[bold]{target}[/]  {state}  storage {store}  queue {view.queue_rows} rows\n"
        f"events/s [bold]{view.events_per_s:,.0f}[/]  stored {view.events_total:,}  "
        f"duplicates {view.duplicates_total:,}  rejected {view.rejected_total:,}\n"
        f"events/s, last {len(history.events_per_s)} samples: "
        f"{sparkline(history.events_per_s)}"
    )
    table = Table(expand=True)
    for column in ("method", "rpc/s", "p50 ms", "p99 ms", "total"):
        table.add_column(column, justify="left" if column == "method" else "right")
    for name, stats in view.methods.items():
        table.add_row(
            name, f"{stats.rate:,.1f}", _ms(stats.p50_ms), _ms(stats.p99_ms), f"{stats.total:,}"
        )
    errors = "  ".join(f"{code} {count:,}" for code, count in view.errors.items()) or "none"
    parts: list[Any] = [Panel(head, title="eventwire top"), table]
    if view.destinations:
        parts.append(_destination_table(view.destinations))
    parts.append(Text(f"errors since start: {errors}"))
    return Group(*parts)


def _destination_table(destinations: dict[str, DestinationView]) -> Table:
    table = Table(expand=True)
    columns = ("destination", "state", "rows/s", "delivered", "retried", "dead letters",
               "lag rows", "lag s", "breaker")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column in columns[:2] else "right")
    for name, d in destinations.items():
        table.add_row(
            name, d.state, f"{d.delivered_per_s:,.0f}", f"{d.delivered:,}", f"{d.retried:,}",
            f"{d.dead_lettered:,}", f"{d.lag_rows:,}", f"{d.lag_seconds:.1f}", d.breaker,
        )  # fmt: skip
    return table


def metrics_url(target: str) -> str:
    if target.startswith(("http://", "https://")):
        return (
            target if target.rstrip("/").endswith("/metrics") else target.rstrip("/") + "/metrics"
        )
    return f"http://{target}/metrics"


def run(target: str, interval: float, iterations: int, console: Console | None = None) -> int:
    """Refresh every ``interval`` seconds; stop after ``iterations`` views (0: never)."""
    url = metrics_url(target)
    console = console or Console()
    history = History()
    with httpx.Client(timeout=max(interval, 1.0)) as http:

        def scrape() -> Scrape:
            response = http.get(url)
            response.raise_for_status()
            return parse(response.text, time.monotonic())

        try:
            before = scrape()
        except httpx.HTTPError as exc:
            console.print(f"[red]cannot read {url}: {exc}[/]")
            return 3
        shown = 0
        live = console.is_terminal
        with (
            Live(console=console, auto_refresh=False, transient=False)
            if live
            else _Plain() as screen
        ):
            while iterations == 0 or shown < iterations:
                time.sleep(interval)
                try:
                    after = scrape()
                except httpx.HTTPError as exc:
                    console.print(f"[red]cannot read {url}: {exc}[/]")
                    return 3
                view = diff(before, after)
                history.add(view)
                frame = render(target, view, history)
                if isinstance(screen, Live):
                    screen.update(frame, refresh=True)
                else:
                    console.print(frame)
                before = after
                shown += 1
    return 0


class _Plain:
    """Stands in for rich's Live when the output is not a terminal (pipes, tests)."""

    def __enter__(self) -> _Plain:
        return self

    def __exit__(self, *exc: object) -> None:
        return None
