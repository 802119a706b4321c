"""Helpers for the destination tests: load sent with ids, and what a stream holds."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc
import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

from eventwire.api import analytics_pb2, analytics_pb2_grpc, telemetry_pb2, telemetry_pb2_grpc
from tests.support.nats import stream_messages

T = TypeVar("T")
OPTIONS = (("grpc.enable_retries", 0),)


class Load:
    """Events (in batches) and alerts sent with ids, each resent until acknowledged."""

    def __init__(self, events: int, alerts: int, *, batch: int = 500, tag: str = "") -> None:
        self.event_ids = [f"ev-{tag}{i:07d}" for i in range(events)]
        self.alert_keys = [f"al-{tag}{i:05d}" for i in range(alerts)]
        self.batch = batch
        self.tracking_ids: set[str] = set()
        self.sent_batches = 0

    async def send(
        self, address: Callable[[], str], *, after_batch: Callable[[int], object]
    ) -> None:
        """Send everything; ``after_batch(i)`` runs after the i-th acknowledged batch
        (where a test injects its faults)."""
        alerts_per_batch = max(1, len(self.alert_keys) // max(1, len(self.event_ids) // self.batch))
        keys = iter(self.alert_keys)
        for i in range(0, len(self.event_ids), self.batch):
            events = [
                analytics_pb2.TrackEventRequest(
                    event_name=f"signup.{n % 3}", user_id=f"u{n % 97}", event_id=event_id,
                    properties={"n": str(n)},
                )
                for n, event_id in enumerate(self.event_ids[i : i + self.batch], start=i)
            ]  # fmt: skip
            await _until_acked(address, _track, events)
            for key in [k for _, k in zip(range(alerts_per_batch), keys, strict=False)]:
                await _until_acked(address, self._alert, key)
            self.sent_batches += 1
            result = after_batch(self.sent_batches)
            if asyncio.iscoroutine(result):
                await result
        for key in keys:
            await _until_acked(address, self._alert, key)

    async def _alert(self, channel: grpc.aio.Channel, key: str) -> None:
        stub = telemetry_pb2_grpc.TelemetryServiceStub(channel)
        reply = await stub.ReportAlert(
            telemetry_pb2.AlertRequest(
                device_id="dev-1",
                alert_type="overheat",
                idempotency_key=key,
                severity=telemetry_pb2.SEVERITY_WARNING,
            ),
            timeout=5,
        )
        self.tracking_ids.add(reply.tracking_id)


async def _track(channel: grpc.aio.Channel, events: list[analytics_pb2.TrackEventRequest]) -> None:
    stub = analytics_pb2_grpc.AnalyticsServiceStub(channel)
    ack = await stub.TrackEvents(analytics_pb2.EventBatch(sequence=1, events=events), timeout=10)
    assert ack.rejected == 0, ack


async def _until_acked(
    address: Callable[[], str],
    call: Callable[[grpc.aio.Channel, T], Awaitable[None]],
    argument: T,
) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            async with grpc.aio.insecure_channel(address(), options=OPTIONS) as channel:
                await call(channel, argument)
                return
        except (grpc.aio.AioRpcError, OSError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def metric(metrics_address: str, name: str, **labels: str) -> float | None:
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://{metrics_address}/metrics", timeout=5)).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


async def wait_for_stream(
    url: str | list[str], stream: str, count: int, timeout: float = 60.0
) -> list[tuple[str, dict[str, str], bytes]]:
    """The stream's messages once it holds ``count`` (or what it holds at the deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            messages = await stream_messages(url, stream)
        except Exception:  # noqa: BLE001 - a cluster electing a leader: ask again
            messages = []
        if len(messages) >= count or time.monotonic() > deadline:
            return messages
        await asyncio.sleep(0.5)


def check_exactly_once(messages: list[tuple[str, dict[str, str], bytes]], load: Load) -> None:
    """Every acknowledged event and alert once, by Nats-Msg-Id and by payload id."""
    ids = Counter(headers["Nats-Msg-Id"] for _, headers, _ in messages)
    doubled = [k for k, n in ids.items() if n > 1]
    assert doubled == [], f"{len(doubled)} message ids twice, e.g. {doubled[:3]}"
    payload_ids: Counter[str] = Counter()
    for subject, _, payload in messages:
        body = orjson.loads(payload)
        if subject.startswith("eventwire.events."):
            payload_ids[body["event"]["eventId"]] += 1
        else:
            payload_ids[body["trackingId"]] += 1
    expected = set(load.event_ids) | load.tracking_ids
    assert set(payload_ids) == expected, (
        f"missing {len(expected - set(payload_ids))}, extra {len(set(payload_ids) - expected)}"
    )
    assert max(payload_ids.values()) == 1
    assert set(ids) == set(load.event_ids) | load.tracking_ids
