"""A destination as configured: ``NAME=URL``, eventwire's options in the URL's query.

Options (docs/destinations.md), removed from the URL before the kind sees it:
``carry`` (``events``, ``alerts`` or ``both``), ``event`` and ``alert_type``
(repeatable filters), ``batch`` (rows per delivery), ``attempts`` (refusals
before a batch goes to the dead letters), ``timeout`` (seconds per delivery),
``start`` (``earliest``: every stored row; ``latest``: from when the
destination is first relayed). Everything else belongs to the kind.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import parse_qsl, urlencode

from eventwire._redact import redact

_NAME: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
SCHEMES: Final = ("nats", "tls", "http", "https")


@dataclass(frozen=True, slots=True)
class DestinationSpec:
    name: str
    scheme: str
    target: str
    """The URL without eventwire's options (may hold credentials: never log it)."""
    events: bool = True
    alerts: bool = True
    event_names: frozenset[str] = frozenset()
    alert_types: frozenset[str] = frozenset()
    batch: int = 500
    attempts: int = 5
    timeout: float = 10.0
    start: str = "earliest"
    options: dict[str, str] = field(default_factory=dict)
    """The kind's own query options."""

    @property
    def shown(self) -> str:
        """The URL as it may be shown: no user information, no query (secrets live there)."""
        scheme, _, rest = self.target.partition("://")
        hosts, slash, path = rest.partition("?")[0].partition("/")
        hosts = ",".join(host.rpartition("@")[2] for host in hosts.split(","))
        return redact(f"{scheme}://{hosts}{slash}{path}")

    @property
    def carries(self) -> str:
        return "both" if self.events and self.alerts else "events" if self.events else "alerts"


def parse_destination(text: str) -> DestinationSpec:
    """``NAME=URL`` as a spec; ValueError naming what is wrong (never the secret)."""
    name, sep, url = text.partition("=")
    name = name.strip()
    if not sep or not _NAME.fullmatch(name):
        raise ValueError(
            "a destination is NAME=URL, NAME of 1 to 64 letters, digits, '-' or '_'"
            f" (got {name[:64]!r})"
        )
    scheme, sep, rest = url.strip().partition("://")
    if not sep or scheme not in SCHEMES:
        raise ValueError(
            f"destination {name}: URL scheme must be one of {', '.join(SCHEMES)}, got {scheme!r}"
        )
    base, _, query = rest.partition("?")
    mine: dict[str, list[str]] = {}
    theirs: list[tuple[str, str]] = []
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key in _OPTIONS:
            mine.setdefault(key, []).append(value)
        else:
            theirs.append((key, value))
    target = f"{scheme}://{base}" + (f"?{urlencode(theirs)}" if theirs else "")
    return _build(name, scheme, target, mine, dict(theirs))


_OPTIONS: Final = frozenset(
    {"carry", "event", "alert_type", "batch", "attempts", "timeout", "start"}
)


_NUMBERS: Final = (("batch", "500"), ("attempts", "5"), ("timeout", "10"))


def _one(name: str, options: dict[str, list[str]], key: str, default: str) -> str:
    values = options.get(key, [default])
    if len(values) != 1:
        raise ValueError(f"destination {name}: {key} given more than once")
    return values[0]


def _build(
    name: str, scheme: str, target: str, mine: dict[str, list[str]], theirs: dict[str, str]
) -> DestinationSpec:
    carry = _one(name, mine, "carry", "both")
    if carry not in ("events", "alerts", "both"):
        raise ValueError(f"destination {name}: carry must be events, alerts or both, got {carry!r}")
    start = _one(name, mine, "start", "earliest")
    if start not in ("earliest", "latest"):
        raise ValueError(f"destination {name}: start must be earliest or latest, got {start!r}")
    texts = [_one(name, mine, key, default) for key, default in _NUMBERS]
    try:
        batch, attempts, timeout = int(texts[0]), int(texts[1]), float(texts[2])
    except ValueError:
        raise ValueError(
            f"destination {name}: batch and attempts must be integers, timeout seconds"
        ) from None
    if not 1 <= batch <= 10_000 or not 1 <= attempts <= 1000:
        raise ValueError(f"destination {name}: need 1 <= batch <= 10000 and 1 <= attempts <= 1000")
    if not math.isfinite(timeout) or not 0 < timeout <= 600:
        raise ValueError(f"destination {name}: timeout must be in (0, 600] seconds")
    return DestinationSpec(
        name=name,
        scheme=scheme,
        target=target,
        events=carry in ("events", "both"),
        alerts=carry in ("alerts", "both"),
        event_names=frozenset(mine.get("event", [])),
        alert_types=frozenset(mine.get("alert_type", [])),
        batch=batch,
        attempts=attempts,
        timeout=timeout,
        start=start,
        options=theirs,
    )
