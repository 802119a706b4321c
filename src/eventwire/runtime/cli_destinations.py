"""``eventwire destinations``: list, pause, resume, replay, dead letters, over gRPC
(``destinations.DestinationsService``) on the client SDK's resilient channel, so the
token, TLS, deadline and retries (of the reads only) are the other commands'."""

from __future__ import annotations

import argparse
import datetime
from typing import Any, Final

from google.protobuf import json_format

from eventwire.api import destinations_pb2 as pb
from eventwire.api import destinations_pb2_grpc
from eventwire.client import ClientConfig, resilient_sync_channel

EXIT_OK: Final = 0
_READS: Final = (
    "/destinations.DestinationsService/ListDestinations",
    "/destinations.DestinationsService/ListDeadLetters",
)


def add_commands(sub: Any, client: argparse.ArgumentParser) -> None:
    # Bare ``eventwire destinations`` lists; give the flags after the action otherwise.
    parser = sub.add_parser(
        "destinations",
        parents=[client],
        help="list destinations (state, lag), pause, resume, replay, dead letters",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    parser.set_defaults(action="list")
    actions.add_parser("list", parents=[client], help="state, positions and lag")
    for name, what in (("pause", "stop delivering"), ("resume", "deliver again")):
        actions.add_parser(name, parents=[client], help=what).add_argument("name")
    replay = actions.add_parser(
        "replay", parents=[client], help="deliver again from a position or a time"
    )
    replay.add_argument("name")
    start = replay.add_mutually_exclusive_group(required=True)
    start.add_argument("--from", dest="from_position", help="XID.SEQ or SEQ (0: everything)")
    start.add_argument("--since", help="ISO 8601 time (2026-12-07T10:00:00Z) or epoch ms")
    replay.add_argument("--kinds", choices=("events", "alerts", "both"), default="both")
    letters = actions.add_parser(
        "dead-letters", parents=[client], help="list dead letters, or retry or discard them"
    )
    letters.add_argument("name")
    what = letters.add_mutually_exclusive_group()
    what.add_argument("--retry", action="store_true", help="deliver them again")
    what.add_argument("--discard", action="store_true", help="drop them")
    letters.add_argument("--ids", default="", help="comma-separated ids (default: all)")


def since_ms(text: str) -> int:
    if text.isdigit():
        return int(text)
    moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return int(moment.timestamp() * 1000)


def run(args: argparse.Namespace, config: ClientConfig) -> int:
    with resilient_sync_channel(args.target, config, idempotent=_READS) as channel:
        stub = destinations_pb2_grpc.DestinationsServiceStub(channel)
        if args.action == "list":
            return _list(stub.ListDestinations(pb.ListDestinationsRequest()), as_json=args.json)
        if args.action == "replay":
            request = pb.ReplayDestinationRequest(
                name=args.name, from_position=args.from_position or "", kinds=args.kinds
            )
            if args.since:
                request.since = since_ms(args.since)
            return _json(stub.ReplayDestination(request))
        if args.action in ("pause", "resume"):
            call = stub.PauseDestination if args.action == "pause" else stub.ResumeDestination
            return _json(call(pb.DestinationRequest(name=args.name)))
        ids = [int(i) for i in args.ids.split(",") if i.strip()]
        chosen = pb.DeadLettersRequest(name=args.name, ids=ids, all=not ids)
        if args.retry or args.discard:
            call_letters = stub.RetryDeadLetters if args.retry else stub.DiscardDeadLetters
            return _json(call_letters(chosen))
        return _json(stub.ListDeadLetters(pb.ListDeadLettersRequest(name=args.name)))


def _list(reply: pb.ListDestinationsResponse, *, as_json: bool) -> int:
    if as_json:
        return _json(reply)
    print("name\tstate\tpaused\tlag_rows\tlag_s\tbreaker\tevents\talerts\turl")
    for d in reply.destinations:
        print(
            f"{d.name}\t{d.state}\t{d.paused}\t{d.lag_rows}\t{d.lag_seconds:.1f}\t"
            f"{d.breaker}\t{d.events_position}\t{d.alerts_position}\t{d.url}"
        )
        if d.last_error:
            print(f"  last error: {d.last_error}")
    return EXIT_OK


def _json(reply: Any) -> int:
    print(json_format.MessageToJson(reply, always_print_fields_with_no_presence=True))
    return EXIT_OK
