"""The ``eventwire`` command: serve, and talk to a server.

Exit codes: 0 success; 1 the server refused the request (bad input, not found,
...); 2 bad command line; 3 the server could not be reached or did not answer
in time.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from eventwire.runtime import cli_client, cli_destinations, cli_plans
from eventwire.runtime.cli_client import EXIT_OK, EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_USAGE

__all__ = ["EXIT_OK", "EXIT_REFUSED", "EXIT_UNREACHABLE", "EXIT_USAGE", "build_parser", "main"]


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
    cli_client.add_arguments(client, env)

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
    cli_plans.add_commands(sub, client)
    return parser


def _add_read_commands(sub: Any, client: argparse.ArgumentParser) -> None:
    """``alerts list|watch`` and ``events query|export``; output is NDJSON with --json."""
    span = argparse.ArgumentParser(add_help=False)
    span.add_argument("--start", type=int, default=0, help="from this epoch ms (inclusive)")
    span.add_argument("--end", type=int, default=0, help="until this epoch ms (exclusive)")
    alert_filter = argparse.ArgumentParser(add_help=False)
    alert_filter.add_argument("--device", default="", help="only alerts of this device")
    alert_filter.add_argument("--type", default="", help="only alerts of this type")
    alert_filter.add_argument(
        "--min-severity", type=cli_client.enum_name, default=0, help="info, warning or critical"
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

    cli_destinations.add_commands(sub, client)
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
        print("error: --scopes is a comma-separated subset of read,write,admin", file=sys.stderr)
        return EXIT_USAGE
    print(f"{digest}  {args.tenant}  {args.scopes}")
    return EXIT_OK


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
        from eventwire.runtime import process as app

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
    try:
        if args.command in ("plans", "quarantine"):
            return cli_plans.run(args)
        return cli_client.run(args)
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:
        # The reader of stdout went away (| head): that is not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
