"""The ``eventwire`` command: serve, and talk to a server.

Exit codes: 0 success; 1 the server refused the request (bad input, not found,
...); 2 bad command line; 3 the server could not be reached or did not answer
in time.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

EXIT_OK: Final = 0
EXIT_REFUSED: Final = 1
EXIT_USAGE: Final = 2
EXIT_UNREACHABLE: Final = 3

_UNREACHABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


def _property(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    from eventwire import config

    parser = argparse.ArgumentParser(
        prog="eventwire", description="Durable analytics events and device alerts over gRPC."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the server")
    config.add_arguments(serve, env)

    client = argparse.ArgumentParser(add_help=False)
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

    track = sub.add_parser("track", parents=[client], help="record one analytics event")
    track.add_argument("event_name", metavar="EVENT")
    track.add_argument("--user", default="", help="user id")
    track.add_argument(
        "-p", "--property", type=_property, action="append", default=[], metavar="KEY=VALUE"
    )
    when = "Unix epoch seconds, ms, µs or ns (told apart by magnitude); 0 = now"
    track.add_argument("--timestamp", type=int, default=0, help=when)
    track.add_argument("--event-id", default="", help="idempotency key")

    alert = sub.add_parser("alert", parents=[client], help="report a device alert")
    alert.add_argument("device_id", metavar="DEVICE")
    alert.add_argument("alert_type", metavar="TYPE")
    alert.add_argument("--timestamp", type=int, default=0, help=when)
    alert.add_argument("--idempotency-key", default="")

    get_alert = sub.add_parser("get-alert", parents=[client], help="show a stored alert")
    get_alert.add_argument("tracking_id", metavar="TRACKING_ID")

    sub.add_parser(
        "bench",
        add_help=False,
        help="benchmark eventwire against bare Python servers (bench/run.py; source checkout)",
    )

    top = sub.add_parser("top", help="live view of a running server, from its /metrics")
    top.add_argument(
        "--target",
        default=env.get("EVENTWIRE_METRICS_TARGET", "localhost:9464"),
        help="the server's metrics address or URL [env EVENTWIRE_METRICS_TARGET; "
        "default: %(default)s]",
    )
    top.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes")
    top.add_argument(
        "--iterations", type=int, default=0, help="stop after this many refreshes (0: never)"
    )

    hash_token = sub.add_parser(
        "hash-token",
        help="print the SHA-256 of a token read from stdin, for an --auth-tokens file",
    )
    hash_token.add_argument(
        "--generate", action="store_true", help="make a new random token: print it, then its hash"
    )
    hash_token.add_argument("--tenant", default="", help="print a whole token-file line")
    hash_token.add_argument("--scopes", default="write,read", help="scopes of that line")

    count = sub.add_parser("count", parents=[client], help="count stored events")
    count.add_argument("--event", default="", help="only events with this name")
    count.add_argument("--user", default="", help="only events of this user")
    count.add_argument("--start", type=int, default=0, help="from this epoch ms (inclusive)")
    count.add_argument("--end", type=int, default=0, help="until this epoch ms (exclusive)")
    _add_read_commands(sub, client)
    return parser


def _severity(text: str) -> int:
    from eventwire.api import telemetry_pb2

    name = "SEVERITY_" + text.upper().removeprefix("SEVERITY_")
    if text.isdigit():
        return int(text)
    if name in telemetry_pb2.Severity.DESCRIPTOR.values_by_name:
        return telemetry_pb2.Severity.Value(name)
    raise argparse.ArgumentTypeError(f"expected info, warning, critical or a number, not {text!r}")


def _add_read_commands(sub: Any, client: argparse.ArgumentParser) -> None:
    """``alerts list|watch`` and ``events query|export``; output is NDJSON with --json."""
    span = argparse.ArgumentParser(add_help=False)
    span.add_argument("--start", type=int, default=0, help="from this epoch ms (inclusive)")
    span.add_argument("--end", type=int, default=0, help="until this epoch ms (exclusive)")
    alert_filter = argparse.ArgumentParser(add_help=False)
    alert_filter.add_argument("--device", default="", help="only alerts of this device")
    alert_filter.add_argument("--type", default="", help="only alerts of this type")
    alert_filter.add_argument(
        "--min-severity", type=_severity, default=0, help="info, warning or critical"
    )

    alerts = sub.add_parser("alerts", help="list or watch stored alerts")
    alert_commands = alerts.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = alert_commands.add_parser(
        "list", parents=[client, alert_filter, span], help="stored alerts, oldest first"
    )
    listing.add_argument("--page-size", type=int, default=100, help="alerts per request")
    listing.add_argument("--limit", type=int, default=0, help="stop after this many (0: all)")
    watch = alert_commands.add_parser(
        "watch",
        parents=[client, alert_filter],
        help="alerts as they commit; reconnects and resumes on its own until interrupted",
    )
    watch.add_argument("--after", default="", help="resume after this cursor")
    watch.add_argument("--from-start", action="store_true", help="begin at the oldest alert")

    events = sub.add_parser("events", help="query or export stored events")
    event_commands = events.add_subparsers(dest="action", required=True, metavar="ACTION")
    query = event_commands.add_parser(
        "query", parents=[client, span], help="exact counts per time bucket and group"
    )
    query.add_argument("--event", default="", help="only events with this name")
    query.add_argument(
        "--bucket", choices=("none", "minute", "hour", "day"), default="none", help="UTC buckets"
    )
    query.add_argument(
        "--group-by", default="", help="event_name, user_id or properties.KEY (default: none)"
    )
    query.add_argument("--limit", type=int, default=0, help="most rows (0: the server's 1000)")
    export = event_commands.add_parser(
        "export", parents=[client, span], help="every stored event once, as NDJSON on stdout"
    )
    export.add_argument("--event", default="", help="only events with this name")
    export.add_argument("--after", default="", help="resume after this cursor")
    export.add_argument(
        "--follow", action="store_true", help="keep going: print new events as they commit"
    )


def _channel(args: argparse.Namespace) -> grpc.Channel:
    if not (args.tls or args.ca or args.cert or args.key):
        return grpc.insecure_channel(args.target)
    from eventwire.client._credentials import channel_credentials

    creds = channel_credentials(ca=args.ca or None, cert=args.cert or None, key=args.key or None)
    return grpc.secure_channel(args.target, creds)


def _call(args: argparse.Namespace, rpc: Callable[[grpc.Channel], Message]) -> int:
    try:
        channel = _channel(args)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    with channel:
        try:
            reply = rpc(channel)
        except grpc.RpcError as exc:
            return _report(exc)
    if args.json:
        print(json_format.MessageToJson(reply, always_print_fields_with_no_presence=True))
    else:
        for name, value in json_format.MessageToDict(
            reply, always_print_fields_with_no_presence=True, preserving_proto_field_name=True
        ).items():
            print(f"{name}: {value}")
    return EXIT_OK


def _report(exc: grpc.RpcError) -> int:
    from eventwire import _status

    code: grpc.StatusCode = exc.code()
    print(f"error: {code.name}: {exc.details()}", file=sys.stderr)
    for violation in _status.field_violations(exc):
        print(f"  {violation[0]}: {violation[1]}", file=sys.stderr)
    return EXIT_UNREACHABLE if code in _UNREACHABLE else EXIT_REFUSED


def _run_client(args: argparse.Namespace) -> int:
    from eventwire.api import analytics_pb2, analytics_pb2_grpc, telemetry_pb2, telemetry_pb2_grpc

    timeout = args.timeout
    command = args.command
    # Per-call metadata rather than call credentials: it also works on plaintext
    # channels (loopback, or behind a TLS-terminating proxy).
    md = (("authorization", f"Bearer {args.token}"),) if args.token else None
    rpc: Callable[[grpc.Channel], Message]
    if command == "track":
        req: Any = analytics_pb2.TrackEventRequest(
            event_name=args.event_name,
            user_id=args.user,
            timestamp=args.timestamp,
            properties=dict(args.property),
            event_id=args.event_id,
        )

        def rpc(ch: grpc.Channel) -> Message:
            return analytics_pb2_grpc.AnalyticsServiceStub(ch).TrackEvent(
                req, timeout=timeout, metadata=md
            )

    elif command == "count":
        req = analytics_pb2.CountEventsRequest(
            event_name=args.event, user_id=args.user, start=args.start, end=args.end
        )

        def rpc(ch: grpc.Channel) -> Message:
            return analytics_pb2_grpc.AnalyticsServiceStub(ch).CountEvents(
                req, timeout=timeout, metadata=md
            )

    elif command == "alert":
        req = telemetry_pb2.AlertRequest(
            device_id=args.device_id,
            alert_type=args.alert_type,
            timestamp=args.timestamp,
            idempotency_key=args.idempotency_key,
        )

        def rpc(ch: grpc.Channel) -> Message:
            return telemetry_pb2_grpc.TelemetryServiceStub(ch).ReportAlert(
                req, timeout=timeout, metadata=md
            )

    else:
        req = telemetry_pb2.GetAlertRequest(tracking_id=args.tracking_id)

        def rpc(ch: grpc.Channel) -> Message:
            return telemetry_pb2_grpc.TelemetryServiceStub(ch).GetAlert(
                req, timeout=timeout, metadata=md
            )

    return _call(args, rpc)


def _iso(ms: int) -> str:
    import datetime

    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _print_alert(alert: Any, *, as_json: bool) -> None:
    if as_json:
        print(json_format.MessageToJson(alert, indent=None), flush=True)
        return
    from eventwire.api import telemetry_pb2

    severity = telemetry_pb2.Severity.Name(alert.severity).removeprefix("SEVERITY_")
    message = f"  {alert.message!r}" if alert.message else ""
    print(
        f"{_iso(alert.timestamp)}  {severity:<11}  {alert.device_id}  {alert.alert_type}"
        f"{message}  {alert.tracking_id}  cursor={alert.cursor}",
        flush=True,
    )


def _run_reads(args: argparse.Namespace) -> int:
    """``alerts list|watch`` and ``events query|export``: streams print as they arrive."""
    from eventwire.api import analytics_pb2_grpc, telemetry_pb2_grpc

    md = (("authorization", f"Bearer {args.token}"),) if args.token else None
    try:
        channel = _channel(args)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    commands: dict[tuple[str, str], Callable[[argparse.Namespace, Any, Any], int]] = {
        ("alerts", "list"): _list_alerts,
        ("alerts", "watch"): _watch,
        ("events", "query"): _query_events,
        ("events", "export"): _export_events,
    }
    with channel:
        stub: Any = (
            telemetry_pb2_grpc.TelemetryServiceStub(channel)
            if args.command == "alerts"
            else analytics_pb2_grpc.AnalyticsServiceStub(channel)
        )
        try:
            return commands[args.command, args.action](args, stub, md)
        except grpc.RpcError as exc:
            return _report(exc)


def _list_alerts(args: argparse.Namespace, telemetry: Any, md: Any) -> int:
    from eventwire.api import telemetry_pb2

    request = telemetry_pb2.ListAlertsRequest(
        device_id=args.device,
        alert_type=args.type,
        min_severity=args.min_severity,
        start=args.start,
        end=args.end,
        page_size=args.page_size,
    )
    shown = 0
    while True:
        page = telemetry.ListAlerts(request, timeout=args.timeout, metadata=md)
        for alert in page.alerts:
            if args.limit and shown >= args.limit:
                return EXIT_OK
            _print_alert(alert, as_json=args.json)
            shown += 1
        if not page.next_page_token:
            return EXIT_OK
        request.page_token = page.next_page_token


def _query_events(args: argparse.Namespace, analytics: Any, md: Any) -> int:
    from eventwire.api import analytics_pb2

    reply = analytics.QueryEvents(
        analytics_pb2.QueryEventsRequest(
            event_name=args.event,
            start=args.start,
            end=args.end,
            bucket=analytics_pb2.Bucket.Value(f"BUCKET_{args.bucket.upper()}"),
            group_by=args.group_by,
            limit=args.limit,
        ),
        timeout=args.timeout,
        metadata=md,
    )
    for row in reply.rows:
        if args.json:
            print(json_format.MessageToJson(row, indent=None))
        else:
            start = _iso(row.bucket_start) if row.bucket_start else "all"
            print(f"{start}\t{row.group}\t{row.count}\t{row.distinct_users}")
    return EXIT_OK


def _export_events(args: argparse.Namespace, analytics: Any, md: Any) -> int:
    """NDJSON always, one ExportedEvent a line; no deadline (an export may be long)."""
    from eventwire.api import analytics_pb2

    request = analytics_pb2.ExportEventsRequest(
        event_name=args.event, start=args.start, end=args.end, after=args.after, follow=args.follow
    )
    for event in analytics.ExportEvents(request, metadata=md):
        print(json_format.MessageToJson(event, indent=None), flush=args.follow)
    return EXIT_OK


def _watch(args: argparse.Namespace, telemetry: Any, md: Any) -> int:
    """Watch until interrupted; on UNAVAILABLE resume after the last cursor, with backoff."""
    import time

    from eventwire.api import telemetry_pb2

    after, from_start, pause = args.after, args.from_start, 0.5
    while True:
        request = telemetry_pb2.WatchAlertsRequest(
            device_id=args.device,
            alert_type=args.type,
            min_severity=args.min_severity,
            after=after,
            from_start=from_start and not after,
        )
        try:
            for alert in telemetry.WatchAlerts(request, metadata=md):
                _print_alert(alert, as_json=args.json)
                after, pause = alert.cursor, 0.5
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            print(f"watch interrupted ({exc.details()}); resuming in {pause:g}s", file=sys.stderr)
            time.sleep(pause)
            pause = min(pause * 2, 10.0)


def _hash_token(args: argparse.Namespace) -> int:
    from eventwire.security.auth import SCOPES, hash_token, new_token

    if args.generate:
        token = new_token()
        print(token)
    else:
        token = sys.stdin.readline().rstrip("\r\n")
        if not token:
            print("error: no token on stdin", file=sys.stderr)
            return EXIT_USAGE
    digest = hash_token(token)
    if not args.tenant:
        print(digest)
        return EXIT_OK
    if not set(args.scopes.split(",")) <= SCOPES:
        print("error: --scopes is a comma-separated subset of read,write", file=sys.stderr)
        return EXIT_USAGE
    print(f"{digest}  {args.tenant}  {args.scopes}")
    return EXIT_OK


def _bench(argv: Sequence[str]) -> int:
    # The harness lives next to the package in a source checkout, not in the wheel.
    script = Path(__file__).resolve().parents[2] / "bench" / "run.py"
    if not script.is_file():
        print(f"eventwire bench: needs a source checkout ({script} not found)", file=sys.stderr)
        return EXIT_USAGE
    import subprocess

    return subprocess.call([sys.executable, str(script), *argv])  # noqa: S603 - our own script


def _missing_server_dependency() -> str:
    """The first package of the ``server`` extra that is not installed, or ""."""
    import importlib.util

    for module in ("uvicorn", "psycopg", "orjson", "grpc_health", "opentelemetry.sdk", "rich"):
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # a missing parent package (opentelemetry.sdk)
            found = False
        if not found:
            return module
    return ""


# One return per command is the clearest dispatch.
def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:  # noqa: PLR0911
    env = os.environ if env is None else env
    # Everything after "bench" belongs to bench/run.py, including --help.
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["bench"]:
        return _bench(arguments[1:])
    args = build_parser(env).parse_args(argv)
    if args.command in ("serve", "top") and (missing := _missing_server_dependency()):
        print(
            f"eventwire {args.command} needs the server's dependencies ({missing} is not "
            "installed): pip install 'eventwire[server]'",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.command == "serve":
        from eventwire import config
        from eventwire.observability import logs
        from eventwire.runtime import server as app

        try:
            server_config = config.from_namespace(args)
        except ValueError as exc:
            print(f"eventwire serve: {exc}", file=sys.stderr)
            return EXIT_USAGE
        logs.configure(server_config.log_level, server_config.log_format)
        return app.run(server_config)
    if args.command == "hash-token":
        return _hash_token(args)
    if args.command == "top":
        from eventwire.runtime import top

        try:
            return top.run(args.target, args.interval, args.iterations)
        except KeyboardInterrupt:
            return EXIT_OK
    if args.command in ("alerts", "events"):
        try:
            return _run_reads(args)
        except KeyboardInterrupt:
            return EXIT_OK
        except BrokenPipeError:
            # The reader of stdout went away (| head): that is not an error.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_OK
    return _run_client(args)


if __name__ == "__main__":
    sys.exit(main())
