"""The wire contract: the seeds' definitions are kept exactly, and our code is fresh."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import grpc
from google.protobuf import descriptor_pb2

from eventwire.api import analytics_pb2, analytics_pb2_grpc, telemetry_pb2, telemetry_pb2_grpc
from eventwire.runtime.server import Server
from tests.support.paths import ROOT, SEEDS


def compile_seeds(out: Path) -> descriptor_pb2.FileDescriptorSet:
    descriptor_set = out / "seeds.pb"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{SEEDS}",
            f"--descriptor_set_out={descriptor_set}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            "analytics.proto",
            "telemetry.proto",
        ],
        check=True,
    )
    return descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes())


def ours(name: str) -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto()
    module = {"analytics.proto": analytics_pb2, "telemetry.proto": telemetry_pb2}[name]
    module.DESCRIPTOR.CopyToProto(proto)
    return proto


def field_signature(f: descriptor_pb2.FieldDescriptorProto) -> tuple[object, ...]:
    # json_name is derived from the name, and CopyToProto leaves it out.
    return (f.name, f.number, f.type, f.label, f.type_name)


def test_generated_code_is_fresh() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_proto.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_every_seed_element_is_unchanged(tmp_path: Path) -> None:
    seeds = compile_seeds(tmp_path)
    checked = 0
    for seed in seeds.file:
        current = ours(seed.name)
        assert current.package == seed.package
        assert current.options.go_package == seed.options.go_package
        messages = {m.name: m for m in current.message_type}
        for seed_message in seed.message_type:
            assert seed_message.name in messages, f"message {seed_message.name} was removed"
            fields = {f.number: f for f in messages[seed_message.name].field}
            for seed_field in seed_message.field:
                assert seed_field.number in fields, f"{seed_message.name}.{seed_field.name} gone"
                assert field_signature(fields[seed_field.number]) == field_signature(seed_field)
                checked += 1
            # Nested types (the map's entry) must match too.
            nested = {n.name: n for n in messages[seed_message.name].nested_type}
            for seed_nested in seed_message.nested_type:
                entry = nested[seed_nested.name]
                assert entry.options.map_entry == seed_nested.options.map_entry
                assert [field_signature(f) for f in entry.field] == [
                    field_signature(f) for f in seed_nested.field
                ]
        services = {s.name: s for s in current.service}
        for seed_service in seed.service:
            methods = {m.name: m for m in services[seed_service.name].method}
            for seed_method in seed_service.method:
                method = methods[seed_method.name]
                assert (
                    method.input_type,
                    method.output_type,
                    method.client_streaming,
                    method.server_streaming,
                ) == (
                    seed_method.input_type,
                    seed_method.output_type,
                    seed_method.client_streaming,
                    seed_method.server_streaming,
                )
                checked += 1
    assert checked == 4 + 2 + 2 + 3 + 2 + 1  # every seed field and method was compared


async def run_client(script: str, modules: Path, address: str) -> str:
    """Run ``script`` with the generated ``modules`` against ``address``; its stdout."""
    # A separate process: generated modules would clash with ours in one descriptor pool.
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        str(modules),
        address,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode().strip()


SEED_CLIENT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[1])
    import grpc
    import analytics_pb2, analytics_pb2_grpc, telemetry_pb2, telemetry_pb2_grpc

    with grpc.insecure_channel(sys.argv[2]) as channel:
        analytics = analytics_pb2_grpc.AnalyticsServiceStub(channel)
        reply = analytics.TrackEvent(
            analytics_pb2.TrackEventRequest(
                event_name="seed-signup", user_id="u1", properties={"plan": "pro"}
            ),
            timeout=5,
        )
        assert reply.success and reply.error_message == "", reply
        events = [analytics_pb2.TrackEventRequest(event_name="seed-view") for _ in range(3)]
        reply = analytics.StreamEvents(iter(events), timeout=5)
        assert reply.success, reply
        telemetry = telemetry_pb2_grpc.TelemetryServiceStub(channel)
        ack = telemetry.ReportAlert(
            telemetry_pb2.AlertRequest(device_id="dev-9", alert_type="smoke"), timeout=5
        )
        assert ack.acknowledged and ack.tracking_id, ack
        print(ack.tracking_id)
    """
)


async def test_a_client_generated_from_the_seeds_works_unchanged(
    tmp_path: Path, server: Server
) -> None:
    compile_seeds(tmp_path)
    tracking_id = await run_client(SEED_CLIENT, tmp_path, server.address)

    async with grpc.aio.insecure_channel(server.address) as ch:
        analytics = analytics_pb2_grpc.AnalyticsServiceStub(ch)
        signup = await analytics.CountEvents(
            analytics_pb2.CountEventsRequest(event_name="seed-signup")
        )
        views = await analytics.CountEvents(
            analytics_pb2.CountEventsRequest(event_name="seed-view")
        )
        alert = await telemetry_pb2_grpc.TelemetryServiceStub(ch).GetAlert(
            telemetry_pb2.GetAlertRequest(tracking_id=tracking_id)
        )
    assert (signup.count, views.count) == (1, 3)
    assert (alert.device_id, alert.alert_type) == ("dev-9", "smoke")


SEED_CLIENT_CLOCKS = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, sys.argv[1])
    import grpc
    import analytics_pb2, analytics_pb2_grpc, telemetry_pb2, telemetry_pb2_grpc

    # What clients in other languages put into the unitless int64: Go's
    # time.Now().Unix() (seconds), UnixMilli, UnixMicro and UnixNano.
    now_ns = time.time_ns()
    stamps = [now_ns // 10**9, now_ns // 10**6, now_ns // 10**3, now_ns]
    with grpc.insecure_channel(sys.argv[2]) as channel:
        analytics = analytics_pb2_grpc.AnalyticsServiceStub(channel)
        for stamp in stamps:
            reply = analytics.TrackEvent(
                analytics_pb2.TrackEventRequest(event_name="clock-unary", timestamp=stamp),
                timeout=5,
            )
            assert reply.success, reply
        events = [analytics_pb2.TrackEventRequest(event_name="clock-stream", timestamp=s)
                  for s in stamps]
        assert analytics.StreamEvents(iter(events), timeout=5).success
        telemetry = telemetry_pb2_grpc.TelemetryServiceStub(channel)
        for stamp in stamps:
            ack = telemetry.ReportAlert(
                telemetry_pb2.AlertRequest(device_id="dev", alert_type="t", timestamp=stamp),
                timeout=5,
            )
            assert ack.acknowledged, ack
            print(ack.tracking_id)
        print(now_ns // 10**6)
    """
)


async def test_a_seed_client_using_seconds_or_nanoseconds_is_served(
    tmp_path: Path, server: Server
) -> None:
    compile_seeds(tmp_path)
    output = await run_client(SEED_CLIENT_CLOCKS, tmp_path, server.address)
    *tracking_ids, sent_ms = output.split()
    now_ms = int(sent_ms)

    async with grpc.aio.insecure_channel(server.address) as ch:
        analytics = analytics_pb2_grpc.AnalyticsServiceStub(ch)
        telemetry = telemetry_pb2_grpc.TelemetryServiceStub(ch)
        # Count bounds in seconds too: every event lies in the second it was sent.
        for name in ("clock-unary", "clock-stream"):
            reply = await analytics.CountEvents(
                analytics_pb2.CountEventsRequest(
                    event_name=name, start=now_ms // 1000, end=now_ms // 1000 + 1
                )
            )
            assert reply.count == 4, name
        stored = [
            (await telemetry.GetAlert(telemetry_pb2.GetAlertRequest(tracking_id=t))).timestamp
            for t in tracking_ids
        ]
    # Stored in milliseconds: the seconds value loses its fraction, the others agree.
    assert stored == [now_ms // 1000 * 1000, now_ms, now_ms, now_ms]


def compile_contract(out: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{ROOT / 'proto'}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            "analytics.proto",
            "telemetry.proto",
        ],
        check=True,
    )


READS_CLIENT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[1])
    import grpc
    import analytics_pb2, analytics_pb2_grpc, telemetry_pb2, telemetry_pb2_grpc

    with grpc.insecure_channel(sys.argv[2]) as channel:
        telemetry = telemetry_pb2_grpc.TelemetryServiceStub(channel)
        analytics = analytics_pb2_grpc.AnalyticsServiceStub(channel)
        watch = telemetry.WatchAlerts(telemetry_pb2.WatchAlertsRequest(from_start=True))
        ids = [
            telemetry.ReportAlert(
                telemetry_pb2.AlertRequest(
                    device_id="dev", alert_type="heat", severity=telemetry_pb2.SEVERITY_CRITICAL,
                    message="hot", attributes={"zone": str(n)},
                ),
                timeout=5,
            ).tracking_id
            for n in range(3)
        ]
        seen = [next(watch) for _ in ids]
        watch.cancel()
        assert [a.tracking_id for a in seen] == ids, seen
        assert seen[0].severity == telemetry_pb2.SEVERITY_CRITICAL and seen[0].cursor
        page = telemetry.ListAlerts(telemetry_pb2.ListAlertsRequest(page_size=2), timeout=5)
        rest = telemetry.ListAlerts(
            telemetry_pb2.ListAlertsRequest(page_size=2, page_token=page.next_page_token), timeout=5
        )
        assert [a.tracking_id for a in [*page.alerts, *rest.alerts]] == ids
        assert rest.next_page_token == ""
        events = [
            analytics_pb2.TrackEventRequest(event_name="view", timestamp=1_749_945_600_000 + n)
            for n in range(4)
        ]
        analytics.TrackEvents(analytics_pb2.EventBatch(events=events), timeout=5)
        rows = analytics.QueryEvents(
            analytics_pb2.QueryEventsRequest(
                bucket=analytics_pb2.BUCKET_HOUR, group_by="event_name"
            ),
            timeout=5,
        ).rows
        assert [(r.bucket_start, r.group, r.count) for r in rows] == [
            (1_749_945_600_000, "view", 4)
        ], rows
        exported = list(analytics.ExportEvents(analytics_pb2.ExportEventsRequest(), timeout=5))
        assert len(exported) == 4 and all(e.event.event_id and e.cursor for e in exported)
        after = list(
            analytics.ExportEvents(
                analytics_pb2.ExportEventsRequest(after=exported[1].cursor), timeout=5
            )
        )
        assert [e.event.event_id for e in after] == [e.event.event_id for e in exported[2:]]
        print("ok")
    """
)


async def test_a_client_generated_from_the_contract_uses_every_read_rpc(
    tmp_path: Path, server: Server
) -> None:
    compile_contract(tmp_path)
    assert await run_client(READS_CLIENT, tmp_path, server.address) == "ok"
