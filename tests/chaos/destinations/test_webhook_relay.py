"""Webhook destination through the relay: a receiver that answers 503 every third
request, hangs every seventh and refuses one batch with 400. Every event arrives at
least once, signatures verify, a redelivered batch keeps its webhook-id, and the
refused batch waits in the dead letters until retried once the receiver is fixed."""

from __future__ import annotations

import base64
import os
from collections import defaultdict
from pathlib import Path

import httpx
from standardwebhooks.webhooks import Webhook

from eventwire.testing import no_backoff, running_server
from tests.support.destinations import Load
from tests.support.webhook_receiver import Answer, Chaos, WebhookReceiver, always

EVENTS = 1_000
BATCH = 50


def ids_in(body: dict[str, list[dict[str, str]]]) -> list[str]:
    return [entry["id"] for entry in body["data"]]


async def test_every_event_at_least_once_and_the_refused_batch_in_the_dead_letters(
    tmp_path: Path,
) -> None:
    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    load = Load(EVENTS, 0, batch=250)
    refused = load.event_ids[123]
    chaos = Chaos(unavailable_every=3, hang_every=7, reject_ids={refused})
    with no_backoff():
        async with WebhookReceiver(chaos) as receiver:
            options = f"secret={secret}&batch={BATCH}&attempts=2&timeout=0.5&carry=events"
            destination = f"hook={receiver.url}?{options}"
            async with (
                running_server(store=f"sqlite:///{tmp_path / 'e.db'}", destinations=(destination,))
                as srv,
                httpx.AsyncClient(base_url=f"http://{srv.http_address}") as http,
            ):  # fmt: skip
                await load.send(lambda: srv.address, after_batch=lambda _: None)

                def delivered(r: WebhookReceiver) -> set[str]:
                    return {i for req in r.answered(204) for i in ids_in(req.json())}

                wanted = set(load.event_ids)
                await receiver.wait_for(lambda r: len(delivered(r)) >= EVENTS - BATCH, timeout=60)
                letters = (
                    await http.get("/v1/destinations:deadLetters", params={"name": "hook"})
                ).json()["deadLetters"]
                assert refused in {letter["key"] for letter in letters}
                assert len(letters) == BATCH
                assert all(letter["attempts"] == 2 for letter in letters)
                assert delivered(receiver) | {letter["key"] for letter in letters} == wanted

                # Every request verifies with the reference implementation, and a
                # batch sent again (after a 503, a hang, a 400) kept its webhook-id.
                ids_by_batch: dict[tuple[str, ...], set[str]] = defaultdict(set)
                for request in receiver.received:
                    Webhook(secret).verify(request.body, request.headers)
                    ids_by_batch[tuple(ids_in(request.json()))].add(request.webhook_id)
                assert all(len(webhook_ids) == 1 for webhook_ids in ids_by_batch.values())
                assert len(receiver.received) > len(ids_by_batch)  # there were redeliveries
                assert receiver.answered(503)
                assert receiver.answered(400)

                receiver.responder = always(Answer(204))  # the receiver is fixed
                retried = await http.post(
                    "/v1/destinations:retryDeadLetters", json={"name": "hook", "all": True}
                )
                assert retried.status_code == 200, retried.text
                assert retried.json()["count"] == str(BATCH)
                assert delivered(receiver) == wanted
                after = await http.get("/v1/destinations:deadLetters", params={"name": "hook"})
                assert after.json()["deadLetters"] == []
