"""URL schemes to sinks: one entry per kind (a Kafka or Redis Streams kind is one more)."""

from __future__ import annotations

import importlib
from typing import Any

from eventwire.destinations.sink import Sink
from eventwire.destinations.spec import DestinationSpec
from eventwire.resilience.policy import _finite


def make_sink(spec: DestinationSpec) -> Sink:
    """The sink for ``spec``; ValueError naming the destination when its URL cannot work."""
    if spec.scheme in ("nats", "tls"):
        return _jetstream(spec)
    return _webhook(spec)


def _jetstream(spec: DestinationSpec) -> Sink:
    from eventwire.destinations.jetstream import JetStreamSink

    scheme, _, rest = spec.target.partition("://")
    hosts, _, path = rest.partition("?")[0].partition("/")
    stream = path.strip("/")
    if not stream or "/" in stream or any(c in stream for c in " .*>"):
        raise ValueError(
            f"destination {spec.name}: a JetStream URL is nats://HOST:PORT[,HOST:PORT]/STREAM"
            " with a stream name without '.', '*', '>' or spaces"
        )
    options = dict(spec.options)
    connect: dict[str, Any] = {}
    if creds := options.pop("creds", None):
        connect["user_credentials"] = creds
    try:
        replicas = int(options.pop("replicas", "1"))
        window = float(options.pop("duplicate_window", "120"))
        _finite("duplicate_window", window, positive=True)
    except ValueError as exc:
        raise ValueError(f"destination {spec.name}: replicas and duplicate_window: {exc}") from None
    if options:
        raise ValueError(
            f"destination {spec.name}: unknown JetStream option(s) {sorted(options)}"
            " (known: replicas, duplicate_window, creds)"
        )
    servers = [f"{scheme}://{host}" for host in hosts.split(",") if host]
    return JetStreamSink(
        servers, stream, replicas=replicas, duplicate_window=window, connect=connect
    )


def _webhook(spec: DestinationSpec) -> Sink:
    try:
        module = importlib.import_module("eventwire.destinations.webhook")
    except ImportError:
        raise ValueError(
            f"destination {spec.name}: webhook destinations are not available in this build"
        ) from None
    url = spec.target.partition("?")[0]
    try:
        sink: Sink = module.WebhookSink.from_url(url, spec.options)
    except ValueError as exc:
        raise ValueError(f"destination {spec.name}: {exc}") from None
    return sink
