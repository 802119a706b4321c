"""Server configuration: one frozen object, built in one place from flags and environment.

Every field of :class:`ServerConfig` is a flag (``--max-batch-events``) and an
environment variable (``EVENTWIRE_MAX_BATCH_EVENTS``); a flag wins over the
environment, which wins over the default. Nothing else in eventwire reads the
environment.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

ENV_PREFIX: Final = "EVENTWIRE_"
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})


def _opt(default: Any, help: str, *, choices: Sequence[str] | None = None) -> Any:
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass(frozen=True, slots=True)
class ServerConfig:
    address: str = _opt("0.0.0.0:50051", "gRPC listen address, HOST:PORT (port 0 picks a free one)")
    http_address: str = _opt(
        "0.0.0.0:8080",
        "JSON/HTTP gateway listen address, HOST:PORT (port 0 picks a free one; empty disables it)",
    )
    # -- HTTP listeners (gateway and /metrics): see docs/limits.md ------------
    http_max_body_bytes: int = _opt(
        4 << 20,
        "largest JSON/HTTP request body accepted, in bytes (a larger declared Content-Length "
        "gets 413 before the body is read)",
    )
    http_max_header_bytes: int = _opt(
        16 << 10, "largest HTTP request line plus headers, in bytes (larger ones get 431)"
    )
    http_header_timeout: float = _opt(
        10.0, "seconds an HTTP client gets to send a whole request head (then 408)"
    )
    http_body_timeout: float = _opt(
        30.0, "seconds an incomplete HTTP request body may go without data (then 408)"
    )
    http_idle_timeout: float = _opt(
        75.0,
        "seconds an HTTP connection may sit idle before the server closes it (longer than "
        "common load balancers' 60, so they close first)",
    )
    http_max_connections: int = _opt(
        1000,
        "open connections the gateway accepts at once, beyond which new ones get 503 (never "
        "more than half of the process's descriptor limit, ulimit -n)",
    )
    http_thread: bool = _opt(
        True,
        "serve HTTP (gateway and /metrics) on a thread and event loop of its own, so that "
        "HTTP clients never delay gRPC; off serves it on the gRPC loop",
    )
    store: str = _opt(
        "sqlite:///eventwire.db",
        "storage URL: sqlite:///relative/path.db or sqlite:////absolute/path.db (embedded), "
        "or postgresql://user@host/db (replicas sharing one database)",
    )
    sqlite_synchronous: str = _opt(
        "full",
        "SQLite durability: full survives power loss; normal survives process crashes only",
        choices=("off", "normal", "full", "extra"),
    )
    grace: float = _opt(10.0, "seconds in-flight RPCs get to finish after SIGTERM/SIGINT")
    health_port: int = _opt(
        0,
        "a second gRPC port, on the host of --address and with its TLS, serving only "
        "grpc.health.v1.Health for probes, so that floods on the main port do not delay them "
        "(0: off)",
    )
    reflection: bool = _opt(True, "serve gRPC server reflection")
    log_level: str = _opt(
        "info", "log level", choices=("debug", "info", "warning", "error", "critical")
    )
    log_format: str = _opt("text", "log line format", choices=("text", "json"))
    max_batch_events: int = _opt(10_000, "most rows one group commit may hold")
    max_pending_events: int = _opt(
        200_000, "rows that may wait for a commit before RPCs get RESOURCE_EXHAUSTED"
    )
    max_commit_delay: float = _opt(
        0.002,
        "longest a request waits for others to share its group commit, in seconds; the "
        "wait happens only while requests arrive faster than commits finish (a lone "
        "caller never waits; 0: never wait)",
    )
    max_stream_events: int = _opt(100_000, "most events one StreamEvents call may carry")
    max_stream_bytes: int = _opt(64 << 20, "most encoded bytes one StreamEvents call may carry")
    max_receive_message_bytes: int = _opt(4 << 20, "largest request message accepted, in bytes")
    max_inflight_bytes: int = _opt(
        128 << 20,
        "request bytes all calls and streams together may hold at once (each event a stream "
        "holds counts 320 bytes more, its decoded cost); beyond it RESOURCE_EXHAUSTED "
        "(0: no limit; see docs/limits.md)",
    )
    max_concurrent_rpcs: int = _opt(
        0, "RPCs served at once before new ones get RESOURCE_EXHAUSTED (0: no limit)"
    )
    workers: int = _opt(
        0,
        "server processes sharing the ports (SO_REUSEPORT), metrics on consecutive ports; "
        "0: one per core with PostgreSQL, one with SQLite (its one file lock barely scales)",
    )
    keepalive_time: float = _opt(60.0, "seconds of idleness before the server pings a client")
    keepalive_timeout: float = _opt(20.0, "seconds to wait for a keepalive ping's answer")
    min_client_ping_interval: float = _opt(
        5.0, "shortest keepalive ping interval accepted from clients, in seconds"
    )
    store_probe_interval: float = _opt(
        1.0,
        "seconds between storage probes while storage is unavailable, and between checks "
        "that the database is still there and writable while it is up",
    )
    metrics_address: str = _opt(
        "0.0.0.0:9464",
        "Prometheus /metrics listen address, HOST:PORT (port 0 picks a free one; empty: off)",
    )
    trace_exporter: str = _opt(
        "none",
        "where OpenTelemetry spans go: none, console, or otlp (configured by the standard "
        "OTEL_EXPORTER_OTLP_* variables)",
        choices=("none", "console", "otlp"),
    )
    # -- security: see docs/security.md ----------------------------------------------
    tls_cert: str = _opt(
        "", "PEM certificate chain served by gRPC and the HTTP gateway; with --tls-key, TLS on"
    )
    tls_key: str = _opt("", "PEM private key of --tls-cert")
    tls_client_ca: str = _opt(
        "", "PEM CA bundle: clients must present a certificate it signed (mTLS; needs --tls-cert)"
    )
    auth_tokens: str = _opt(
        "",
        "token file (SHA-256 hash, tenant, scopes per line); when set, every RPC and route but "
        "health needs 'authorization: Bearer TOKEN'; re-read on SIGHUP",
    )
    rate_limit: float = _opt(
        0.0, "per-tenant events, alerts and reads per second (token bucket; 0: no limit)"
    )
    rate_burst: int = _opt(0, "per-tenant bucket size (0: one second of --rate-limit)")
    max_concurrent_streams: int = _opt(
        1000,
        "RPCs one HTTP/2 connection may have open at once (more wait on the client); also "
        "how many of one connection's calls may queue ahead of other connections' calls",
    )
    max_pending_rpcs: int = _opt(
        24_000,
        "RPCs of one method that may wait for the server to take them; beyond it new ones end "
        "at once (grpcio's own default ends a random share CANCELLED from 1,000 on, whoever "
        "sent them)",
    )
    max_connection_age: float = _opt(
        1800.0, "seconds before a connection is asked to go away, so load rebalances (0: never)"
    )
    max_connection_age_grace: float = _opt(
        30.0, "seconds RPCs still open on an aged connection get before it is closed"
    )
    max_connection_idle: float = _opt(
        900.0, "seconds a connection without RPCs stays open (0: forever)"
    )
    max_metadata_bytes: int = _opt(8192, "largest total request metadata (headers) accepted")
    handshake_timeout: float = _opt(
        10.0, "seconds a new connection gets to finish its TLS and HTTP/2 handshake"
    )
    max_connections: int = _opt(0, "open gRPC connections accepted at once (0: no limit)")
    # -- reads: see docs/limits.md -----------------------------------------------
    feed_max_bytes: int = _opt(
        32 << 20,
        "bytes of recent alerts the live feed keeps for watchers (the oldest are dropped; a "
        "watcher behind them reads the store); the rendered-alert cache gets a quarter more",
    )
    stream_buffer_bytes: int = _opt(
        256 << 10, "bytes a streaming reply (watch, export) may hold for its client"
    )
    stream_stall_timeout: float = _opt(
        30.0,
        "seconds a streaming reply's client may leave its buffer full before it is told where "
        "to resume and disconnected",
    )
    # -- retention: see docs/reading.md -------------------------------------------
    retention: str = _opt(
        "", "how long events and alerts are kept, e.g. 30d, 12h, 90m, 45s (empty: forever)"
    )
    events_retention: str = _opt("", "how long events are kept (empty: --retention)")
    alerts_retention: str = _opt("", "how long alerts are kept (empty: --retention)")
    retention_chunk: int = _opt(
        1000, "most rows one retention delete removes, each chunk its own short transaction"
    )
    retention_interval: float = _opt(60.0, "seconds between two retention passes")
    retention_overrides_destinations: bool = _opt(
        False,
        "let retention purge rows a destination has not delivered yet (they are counted and "
        "logged as skipped); off: retention waits for every destination",
    )
    # -- destinations: see docs/destinations.md -------------------------------------
    destinations: tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "a destination NAME=URL (nats://HOST:PORT/STREAM, https://...), options in "
            "the URL's query; repeatable (env: comma-separated NAME=URL pairs)",
            "choices": None,
            "flag": "--destination",
        },
    )
    destination_lease: float = _opt(
        5.0,
        "seconds a replica's lease on a destination lasts without renewal: another replica "
        "takes a dead one's destinations over within this",
    )

    def __post_init__(self) -> None:
        _check_address("address", self.address, optional=False)
        _check_address("http_address", self.http_address, optional=True)
        _check_address("metrics_address", self.metrics_address, optional=True)
        if not self.store.startswith(("sqlite:///", "postgresql://", "postgres://")):
            # Only the scheme: the rest of a mistyped URL may hold a password.
            scheme = self.store.partition(":")[0]
            raise ValueError(f"store must be a sqlite:/// or postgresql:// URL, not {scheme!r}")
        _check_fields(self)
        _check_health_port(self)
        if self.max_batch_events < 1 or self.max_pending_events < self.max_batch_events:
            raise ValueError("need 1 <= max_batch_events <= max_pending_events")
        if not 0 <= self.max_commit_delay <= 1:
            raise ValueError("max_commit_delay must be between 0 and 1 second")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key go together: set both or neither")
        if self.tls_client_ca and not self.tls_cert:
            raise ValueError("tls_client_ca (mTLS) needs tls_cert and tls_key")
        if self.http_max_header_bytes < 1024 or self.http_max_connections < 1:
            raise ValueError("need http_max_header_bytes >= 1024 and http_max_connections >= 1")
        positive = ("http_header_timeout", "http_body_timeout", "http_idle_timeout")
        for name in (*positive, "handshake_timeout", "stream_buffer_bytes", "stream_stall_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.max_pending_rpcs < 1:
            raise ValueError("need max_pending_rpcs >= 1")
        if self.max_concurrent_streams < 1 or self.max_metadata_bytes < 1024:
            raise ValueError("need max_concurrent_streams >= 1 and max_metadata_bytes >= 1024")
        for name in ("retention", "events_retention", "alerts_retention"):
            parse_duration(name, getattr(self, name))
        if self.retention_chunk < 1 or self.retention_interval <= 0:
            raise ValueError("need retention_chunk >= 1 and retention_interval > 0")
        _check_destinations(self)

    def retention_ms(self, kind: str) -> int:
        """How long rows of ``kind`` ("events" or "alerts") are kept, in ms; 0: forever."""
        own = self.events_retention if kind == "events" else self.alerts_retention
        return parse_duration(f"{kind}_retention", own or self.retention)


_DURATION_UNITS: Final = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_duration(name: str, text: str) -> int:
    """``30d``, ``12h``, ``90m`` or ``45s`` in milliseconds; empty or ``0`` is 0 (forever)."""
    value = text.strip().lower()
    if value in ("", "0"):
        return 0
    number, unit = value[:-1], value[-1:]
    if unit not in _DURATION_UNITS or not number.isdigit() or int(number) == 0:
        raise ValueError(f"{name} must be a positive whole number of s, m, h or d, got {text!r}")
    return int(number) * _DURATION_UNITS[unit]


def _check_fields(config: ServerConfig) -> None:
    """Each field on its own: no negative numbers, choices respected."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
            raise ValueError(f"{f.name} must not be negative, got {value}")
        choices = f.metadata.get("choices")
        if choices and value not in choices:
            raise ValueError(f"{f.name} must be one of {', '.join(choices)}, got {value!r}")


def _check_destinations(config: ServerConfig) -> None:
    # Each URL is parsed by eventwire.destinations when the server is built.
    if not 0.5 <= config.destination_lease <= 300:
        raise ValueError("destination_lease must be between 0.5 and 300 seconds")
    names = [d.partition("=")[0].strip() for d in config.destinations]
    if len(set(names)) != len(names):
        raise ValueError("destination names must be unique")


def _check_health_port(config: ServerConfig) -> None:
    port = config.health_port
    if port > 65535:
        raise ValueError(f"health_port must be a TCP port or 0, got {port}")
    # Under --workers both ports have SO_REUSEPORT: the two servers would share it silently.
    if port and port in (_port_of(config.address), _port_of(config.http_address)):
        raise ValueError(f"health_port {port} is already the gRPC or HTTP port")


def _port_of(address: str) -> int:
    return int(address.rpartition(":")[2]) if address else 0


def _check_address(name: str, value: str, *, optional: bool) -> None:
    if optional and not value:
        return
    _, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        empty = " or empty" if optional else ""
        raise ValueError(f"{name} must be HOST:PORT{empty}, got {value!r}")


def _convert(kind: type, raw: str) -> Any:
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError(f"expected one of {sorted(_TRUE | _FALSE)}")
    return kind(raw)


def add_arguments(parser: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
    """Add one flag per :class:`ServerConfig` field, with defaults taken from ``env``."""
    hints = typing.get_type_hints(ServerConfig)
    for f in dataclasses.fields(ServerConfig):
        kind = hints[f.name]
        env_name = ENV_PREFIX + f.name.upper()
        default = f.default
        if env_name in env:
            try:
                default = _convert(kind, env[env_name])
            except ValueError as exc:
                parser.error(f"{env_name}={env[env_name]!r}: {exc}")
        flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
        help_text = f"{f.metadata['help']} [env {env_name}; default: %(default)s]"
        if f.metadata.get("flag"):
            # Repeatable; the environment's list is the default, flags replace it.
            listed = _split_pairs(env.get(env_name, ""))
            parser.add_argument(
                flag, dest=f.name, action="append", default=None, help=help_text, metavar="NAME=URL"
            )
            parser.set_defaults(**{f"_{f.name}_env": tuple(listed)})
            continue
        if kind is bool:
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=default, help=help_text
            )
        else:
            parser.add_argument(
                flag,
                type=kind,
                default=default,
                choices=f.metadata.get("choices"),
                help=help_text,
                metavar=f.name.upper(),
            )


def from_namespace(ns: argparse.Namespace) -> ServerConfig:
    values = {f.name: getattr(ns, f.name) for f in dataclasses.fields(ServerConfig)}
    for f in dataclasses.fields(ServerConfig):
        if f.metadata.get("flag"):
            given = values[f.name]
            values[f.name] = tuple(given) if given else getattr(ns, f"_{f.name}_env", ())
    return ServerConfig(**values)


_PAIR: Final = re.compile(r",(?=\s*[A-Za-z0-9_-]{1,64}=[a-z]+://)")


def _split_pairs(text: str) -> list[str]:
    """``NAME=URL`` pairs separated by commas; a comma inside a URL (a list of NATS
    servers) stays in it, since what follows it is not ``NAME=scheme://``."""
    return [part.strip() for part in _PAIR.split(text) if part.strip()]
