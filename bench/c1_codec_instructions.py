"""C1's codec work alone, in instructions (callgrind): what the JSON routes and the Connect
door each do to turn a request body into messages and a reply into bytes.

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python bench/c1_codec_instructions.py json-unary 2000   # and 0, and connect-*

Run with N and with 0 iterations; (Ir(N) - Ir(0)) / N is the instructions per request (or
per batch, for the batch shapes), free of the machine's noise (bench/notes.md, C1). The
rest of a request (HTTP, the gateway, the commit) is the same through both doors.
"""

from __future__ import annotations

import sys

import orjson

from eventwire.api import analytics_pb2
from eventwire.frontends.http.jsonparse import parse_json
from eventwire.frontends.http.messages import parse_event, to_json

EVENT = {"eventName": "page_view", "userId": "user-42", "properties": {"plan": "pro", "src": "x"}}
PROTO = analytics_pb2.TrackEventRequest(
    event_name="page_view", user_id="user-42", properties={"plan": "pro", "src": "x"}
)
REPLY = analytics_pb2.TrackEventResponse(
    success=True, event_id="01a2509b-c51a-7d9d-8288-a547ccb0325b"
)
ACK = analytics_pb2.IngestAck(accepted=1000, sequence=1)
BATCH = 1000


def json_unary(body: bytes) -> bytes:
    return to_json(REPLY) if parse_event(parse_json(body), "request body") else b""


def connect_unary(body: bytes) -> bytes:
    return REPLY.SerializeToString() if analytics_pb2.TrackEventRequest.FromString(body) else b""


def json_batch(body: bytes) -> bytes:
    obj = parse_json(body)
    assert isinstance(obj, dict)
    batch = analytics_pb2.EventBatch()
    batch.events.extend(parse_event(e, f"events[{i}]") for i, e in enumerate(obj["events"]))
    return to_json(ACK)


def connect_batch(body: bytes) -> bytes:
    return ACK.SerializeToString() if analytics_pb2.EventBatch.FromString(body) else b""


SHAPES = {
    "json-unary": (json_unary, orjson.dumps(EVENT)),
    "connect-unary": (connect_unary, PROTO.SerializeToString()),
    "json-batch": (json_batch, orjson.dumps({"events": [EVENT] * BATCH})),
    "connect-batch": (
        connect_batch,
        analytics_pb2.EventBatch(events=[PROTO] * BATCH).SerializeToString(),
    ),
}


def main() -> None:
    shape, count = sys.argv[1], int(sys.argv[2])
    work, body = SHAPES[shape]
    work(body)  # warm: imports, caches
    for _ in range(count):
        work(body)


if __name__ == "__main__":
    main()
