"""``eventwire plans`` and ``eventwire quarantine``: tracking plans and the quarantine
(docs/tracking-plans.md), on the client SDK's :class:`~eventwire.client.SyncPlansClient`.

``plans codegen`` writes typed tracking functions from the plan in force (or
from ``--plan FILE``, without a server).
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path
from typing import Any, Final

import grpc

from eventwire.client import ClientConfig, SyncPlansClient
from eventwire.runtime import cli_client
from eventwire.runtime.cli_client import EXIT_OK, EXIT_REFUSED, EXIT_USAGE


def since_ms(text: str) -> int:
    """Epoch milliseconds, or an ISO 8601 time (UTC unless it says otherwise)."""
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither epoch milliseconds nor an ISO 8601 time"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return int(moment.timestamp() * 1000)


def add_commands(sub: Any, client: argparse.ArgumentParser) -> None:
    plans = sub.add_parser("plans", help="apply, show, diff a tracking plan; generate code")
    actions = plans.add_subparsers(dest="action", required=True, metavar="ACTION")
    apply = actions.add_parser(
        "apply", parents=[client], help="check a plan file and put it in force (admin scope)"
    )
    apply.add_argument("file", metavar="FILE", help="the plan, YAML or JSON")
    apply.add_argument("--dry-run", action="store_true", help="check and diff only")
    show = actions.add_parser("show", parents=[client], help="the plan in force, or --version N")
    show.add_argument("--version", type=int, default=0, help="this version (default: in force)")
    diff = actions.add_parser(
        "diff", parents=[client], help="what a plan file would change against the plan in force"
    )
    diff.add_argument("file", metavar="FILE")
    codegen = actions.add_parser(
        "codegen", parents=[client], help="typed tracking functions from the plan"
    )
    codegen.add_argument("--python", required=True, metavar="OUT.py", help="module to write")
    codegen.add_argument(
        "--plan", default="", metavar="FILE", help="from this file, not the server's plan"
    )

    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--event", default="", help="only this event name (or alert type)")
    where.add_argument("--rule", default="", help="only events with a violation of this rule")
    where.add_argument(
        "--since", type=since_ms, default=0, help="quarantined at or after (epoch ms or ISO 8601)"
    )
    where.add_argument(
        "--until", type=since_ms, default=0, help="quarantined before (epoch ms or ISO 8601)"
    )
    quarantine = sub.add_parser("quarantine", help="list, replay or discard quarantined events")
    q_actions = quarantine.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = q_actions.add_parser(
        "list", parents=[client, where], help="grouped by event name and violation rule"
    )
    listing.add_argument("--limit", type=int, default=0, help="most groups (0: 100)")
    listing.add_argument("--samples", type=int, default=3, help="sample events per group")
    replay = q_actions.add_parser(
        "replay",
        parents=[client, where],
        help="move what the plan in force accepts now into the events (admin scope)",
    )
    replay.add_argument("--dry-run", action="store_true", help="count only; move nothing")
    q_actions.add_parser(
        "discard", parents=[client, where], help="delete quarantined events (admin scope)"
    )


def run(args: argparse.Namespace) -> int:
    try:
        config = cli_client.client_config(args)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return _COMMANDS[args.command, args.action](args, config)
    except grpc.RpcError as exc:
        return cli_client.report(exc)
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _read(path: str) -> str:
    return Path(path).read_text(encoding="utf-8")


def _apply(args: argparse.Namespace, config: ClientConfig) -> int:
    document = _read(args.file)
    with SyncPlansClient(args.target, config) as client:
        reply = client.apply_plan(document, source=args.file, dry_run=args.dry_run)
    if args.json:
        return cli_client.print_reply(reply, as_json=True)
    state = "applied" if reply.changed else "dry run" if args.dry_run else "unchanged"
    print(f"plan version {reply.version} in force ({state})")
    for change in reply.changes:
        print(f"  {change}")
    return EXIT_OK


def _show(args: argparse.Namespace, config: ClientConfig) -> int:
    with SyncPlansClient(args.target, config) as client:
        plan = client.get_plan(args.version)
    if args.json:
        return cli_client.print_reply(plan, as_json=True)
    if not plan.version:
        print("no tracking plan applied: every event is accepted")
        return EXIT_OK
    print(f"# version {plan.version}, applied {_iso(plan.applied_at)} by {plan.applied_by!r}")
    print(plan.document)
    return EXIT_OK


def _diff(args: argparse.Namespace, config: ClientConfig) -> int:
    document = _read(args.file)
    with SyncPlansClient(args.target, config) as client:
        reply = client.diff_plan(document, source=args.file)
    if args.json:
        return cli_client.print_reply(reply, as_json=True)
    print(f"against version {reply.current_version}:")
    for change in reply.changes or ["no change"]:
        print(f"  {change}")
    return EXIT_OK


def _codegen(args: argparse.Namespace, config: ClientConfig) -> int:
    # The plan model (PyYAML, jsonschema-rs) comes with the server's dependencies.
    from eventwire.ingest.plan import PlanError, generate_python, parse_plan

    if args.plan:
        document, source = _read(args.plan), args.plan
    else:
        with SyncPlansClient(args.target, config) as client:
            plan = client.get_plan()
        if not plan.version:
            print(
                "error: the server has no tracking plan; apply one or pass --plan", file=sys.stderr
            )
            return EXIT_REFUSED
        document, source = plan.document, f"plan version {plan.version}"
    try:
        spec = parse_plan(document, source=source)
    except PlanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    Path(args.python).write_text(generate_python(spec), encoding="utf-8")
    print(f"wrote {args.python}", file=sys.stderr)
    return EXIT_OK


def _where(args: argparse.Namespace) -> dict[str, Any]:
    return {"event_name": args.event, "rule": args.rule, "since": args.since, "until": args.until}


def _list(args: argparse.Namespace, config: ClientConfig) -> int:
    with SyncPlansClient(args.target, config) as client:
        reply = client.list_quarantine(**_where(args), limit=args.limit, samples=args.samples)
    if args.json:
        return cli_client.print_reply(reply, as_json=True)
    print(f"{reply.total} quarantined")
    for group in reply.groups:
        print(f"{group.count:>8}  {group.kind:<5}  {group.event_name}  {group.rule}")
        for sample in group.samples:
            first = sample.violations[0] if sample.violations else None
            why = f"{first.field}: {first.description}" if first else ""
            print(f"          {sample.event_id}  {_iso(sample.quarantined_at)}  {why}")
    return EXIT_OK


def _replay(args: argparse.Namespace, config: ClientConfig) -> int:
    with SyncPlansClient(args.target, config) as client:
        reply = client.replay_quarantine(**_where(args), dry_run=args.dry_run)
    if args.json:
        return cli_client.print_reply(reply, as_json=True)
    verb = "would move" if args.dry_run else "moved"
    print(
        f"{verb} {reply.moved} (of which {reply.duplicates} already stored); "
        f"{reply.remaining} still violate plan version {reply.plan_version}"
    )
    return EXIT_OK


def _discard(args: argparse.Namespace, config: ClientConfig) -> int:
    with SyncPlansClient(args.target, config) as client:
        reply = client.discard_quarantine(**_where(args))
    if args.json:
        return cli_client.print_reply(reply, as_json=True)
    print(f"discarded {reply.discarded}")
    return EXIT_OK


def _iso(ms: int) -> str:
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


_COMMANDS: Final = {
    ("plans", "apply"): _apply,
    ("plans", "show"): _show,
    ("plans", "diff"): _diff,
    ("plans", "codegen"): _codegen,
    ("quarantine", "list"): _list,
    ("quarantine", "replay"): _replay,
    ("quarantine", "discard"): _discard,
}
