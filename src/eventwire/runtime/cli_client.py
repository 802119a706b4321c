"""The ``eventwire`` commands that talk to a server, on the client SDK.

Channel defaults, TLS, the bearer token, deadlines, retries with jittered
backoff, the circuit breaker, paging and the resume of watches and exports all
come from :class:`~eventwire.client.SyncAnalyticsClient` and
:class:`~eventwire.client.SyncTelemetryClient`; this module parses flags into
their calls and prints what comes back.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from collections.abc import Callable
from typing import Any, Final

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from eventwire import _status
from eventwire.api import analytics_pb2, telemetry_pb2
from eventwire.client import (
    ClientConfig,
    RetryEvent,
    SyncAnalyticsClient,
    SyncTelemetryClient,
    channel_credentials,
)
from eventwire.runtime import cli_destinations

__all__ = [
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "add_arguments",
    "client_config",
    "print_reply",
    "report",
    "run",
]

EXIT_OK: Final = 0
EXIT_REFUSED: Final = 1
EXIT_USAGE: Final = 2
EXIT_UNREACHABLE: Final = 3

_UNREACHABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})

Command = Callable[[argparse.Namespace, ClientConfig], int]


def add_arguments(client: argparse.ArgumentParser, env: Any) -> None:
    """The flags every client command shares: where, how long, TLS and the token."""
    client.add_argument(
        "--target",
        default=env.get("EVENTWIRE_TARGET", "localhost:50051"),
        help="server address [env EVENTWIRE_TARGET; default: %(default)s]",
    )
    client.add_argument(
        "--timeout", type=float, default=5.0, help="deadline in seconds [default: %(default)s]"
    )
    client.add_argument("--json", action="store_true", help="print the reply as JSON")
    tls = client.add_argument_group("TLS and credentials")
    for flag, env_name, what in (
        ("--ca", "EVENTWIRE_CA", "PEM CA bundle to verify the server with (turns TLS on)"),
        ("--cert", "EVENTWIRE_CERT", "PEM client certificate for mTLS (turns TLS on)"),
        ("--key", "EVENTWIRE_KEY", "PEM private key of --cert"),
    ):
        tls.add_argument(
            flag, default=env.get(env_name, ""), metavar="FILE", help=f"{what} [env {env_name}]"
        )
    tls.add_argument("--tls", action="store_true", help="use TLS, trusting the system's CA roots")
    tls.add_argument(
        "--token",
        default=env.get("EVENTWIRE_TOKEN", ""),
        help="bearer token [env EVENTWIRE_TOKEN; prefer it: arguments show in ps]",
    )


def enum_name(text: str) -> int | str:
    """A number, or a name the client checks (``warning``, ``SEVERITY_WARNING``)."""
    return int(text) if text.isdigit() else text


def client_config(args: argparse.Namespace) -> ClientConfig:
    credentials = None
    if args.tls or args.ca or args.cert or args.key:
        credentials = channel_credentials(
            ca=args.ca or None, cert=args.cert or None, key=args.key or None
        )
    on_retry = (
        _resuming if (args.command, getattr(args, "action", "")) == ("alerts", "watch") else None
    )
    # The token goes as call metadata, so it also works on plaintext channels
    # (loopback, or behind a TLS-terminating proxy).
    return ClientConfig(
        timeout=args.timeout, credentials=credentials, token=args.token or None, on_retry=on_retry
    )


def _resuming(event: RetryEvent) -> None:
    print(f"watch interrupted ({event.code.name}); resuming in {event.delay:.2g}s", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Run one client command; its exit code."""
    try:
        config = client_config(args)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "destinations":
        command: Command = cli_destinations.run
    else:
        grouped = args.command in ("alerts", "events")
        command = _COMMANDS[(args.command, args.action) if grouped else args.command]
    try:
        return command(args, config)
    except grpc.RpcError as exc:
        return report(exc)
    except ValueError as exc:
        # A name the client does not know (--min-severity): the command line's fault.
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def report(exc: grpc.RpcError) -> int:
    code: grpc.StatusCode = exc.code()
    print(f"error: {code.name}: {exc.details()}", file=sys.stderr)
    for field, description in _status.field_violations(exc):
        print(f"  {field}: {description}", file=sys.stderr)
    return EXIT_UNREACHABLE if code in _UNREACHABLE else EXIT_REFUSED


_PLAN_FIELDS: Final = frozenset({"outcome", "violations", "quarantined", "flagged", "plan_version"})
"""What a reply says about the tracking plan: left out of the plain text when no plan judged it."""


def print_reply(reply: Message, *, as_json: bool) -> int:
    if as_json:
        print(json_format.MessageToJson(reply, always_print_fields_with_no_presence=True))
    else:
        judged = getattr(reply, "plan_version", 0)
        for name, value in json_format.MessageToDict(
            reply, always_print_fields_with_no_presence=True, preserving_proto_field_name=True
        ).items():
            if judged or name not in _PLAN_FIELDS:
                print(f"{name}: {value}")
    return EXIT_OK


def _track(args: argparse.Namespace, config: ClientConfig) -> int:
    with SyncAnalyticsClient(args.target, config) as client:
        reply = client.track_event(
            args.event_name,
            args.user,
            properties=dict(args.property),
            timestamp=args.timestamp,
            event_id=args.event_id or None,
        )
    return print_reply(reply, as_json=args.json)


def _count(args: argparse.Namespace, config: ClientConfig) -> int:
    with SyncAnalyticsClient(args.target, config) as client:
        count = client.count_events(args.event, args.user, start=args.start, end=args.end)
    return print_reply(analytics_pb2.CountEventsResponse(count=count), as_json=args.json)


def _alert(args: argparse.Namespace, config: ClientConfig) -> int:
    with SyncTelemetryClient(args.target, config) as client:
        reply = client.report_alert(
            args.device_id,
            args.alert_type,
            timestamp=args.timestamp,
            idempotency_key=args.idempotency_key or None,
        )
    return print_reply(reply, as_json=args.json)


def _get_alert(args: argparse.Namespace, config: ClientConfig) -> int:
    with SyncTelemetryClient(args.target, config) as client:
        reply = client.get_alert(args.tracking_id)
    return print_reply(reply, as_json=args.json)


def _iso(ms: int) -> str:
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _print_alert(alert: telemetry_pb2.Alert, *, as_json: bool) -> None:
    if as_json:
        print(json_format.MessageToJson(alert, indent=None), flush=True)
        return
    severity = telemetry_pb2.Severity.Name(alert.severity).removeprefix("SEVERITY_")
    message = f"  {alert.message!r}" if alert.message else ""
    print(
        f"{_iso(alert.timestamp)}  {severity:<11}  {alert.device_id}  {alert.alert_type}"
        f"{message}  {alert.tracking_id}  cursor={alert.cursor}",
        flush=True,
    )


def _list_alerts(args: argparse.Namespace, config: ClientConfig) -> int:
    with SyncTelemetryClient(args.target, config) as client:
        alerts = client.list_alerts(
            device_id=args.device,
            alert_type=args.type,
            min_severity=args.min_severity,
            start=args.start,
            end=args.end,
            page_size=args.page_size,
        )
        for shown, alert in enumerate(alerts):
            if args.limit and shown >= args.limit:
                break
            _print_alert(alert, as_json=args.json)
    return EXIT_OK


def _watch_alerts(args: argparse.Namespace, config: ClientConfig) -> int:
    """Until interrupted: the client resumes after the last alert printed, with its
    backoff and breaker, so a server restart loses and repeats nothing."""
    with (
        SyncTelemetryClient(args.target, config) as client,
        client.watch_alerts(
            device_id=args.device,
            alert_type=args.type,
            min_severity=args.min_severity,
            after=args.after,
            from_start=args.from_start,
        ) as stream,
    ):
        for alert in stream:
            _print_alert(alert, as_json=args.json)
    return EXIT_OK


def _query_events(args: argparse.Namespace, config: ClientConfig) -> int:
    with SyncAnalyticsClient(args.target, config) as client:
        rows = client.query_events(
            args.event,
            start=args.start,
            end=args.end,
            bucket=args.bucket,
            group_by=args.group_by,
            limit=args.limit,
        )
    for row in rows:
        if args.json:
            print(json_format.MessageToJson(row, indent=None))
        else:
            start = _iso(row.bucket_start) if row.bucket_start else "all"
            print(f"{start}\t{row.group}\t{row.count}\t{row.distinct_users}")
    return EXIT_OK


def _export_events(args: argparse.Namespace, config: ClientConfig) -> int:
    """NDJSON always, one ExportedEvent a line; no deadline (an export may be long),
    resumed after the last line printed when the connection breaks."""
    with (
        SyncAnalyticsClient(args.target, config) as client,
        client.export_events(
            args.event, start=args.start, end=args.end, after=args.after, follow=args.follow
        ) as stream,
    ):
        for event in stream:
            print(json_format.MessageToJson(event, indent=None), flush=args.follow)
    return EXIT_OK


_COMMANDS: Final[dict[str | tuple[str, str], Command]] = {
    "track": _track,
    "count": _count,
    "alert": _alert,
    "get-alert": _get_alert,
    ("alerts", "list"): _list_alerts,
    ("alerts", "watch"): _watch_alerts,
    ("events", "query"): _query_events,
    ("events", "export"): _export_events,
}
