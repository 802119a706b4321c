"""Well-behaved clients that measure a server while it is abused: each calls in a
loop in its own thread and records every latency and error."""

from __future__ import annotations

import threading
import time
from typing import Any, Self

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from eventwire.api import analytics_pb2, analytics_pb2_grpc


class _CallLoop:
    """One call in a loop in a thread, with its latencies and errors recorded."""

    def __init__(self, pause: float) -> None:
        self._pause = pause
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.latencies: list[float] = []
        self.errors: list[str] = []

    def _call(self) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        pass

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.perf_counter()
            try:
                self._call()
            except grpc.RpcError as err:
                self.errors.append(f"{err.code()}: {err.details()}")
                continue
            self.latencies.append(time.perf_counter() - began)
            self._stop.wait(self._pause)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        self._close()

    def quantile(self, q: float) -> float:
        """The ``q`` quantile of the latencies in seconds; infinite when there are none."""
        ordered = sorted(self.latencies)
        if not ordered:
            return float("inf")
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))]

    def p99(self) -> float:
        return self.quantile(0.99)


class LegitClient(_CallLoop):
    """A well-behaved client in a thread: TrackEvent in a loop, latencies recorded."""

    def __init__(self, address: str, *, timeout: float = 5.0) -> None:
        super().__init__(pause=0.005)
        self._timeout = timeout
        self._channel = grpc.insecure_channel(address)
        self._stub = analytics_pb2_grpc.AnalyticsServiceStub(self._channel)
        self._event = analytics_pb2.TrackEventRequest(event_name="legit")

    def _call(self) -> None:
        self._stub.TrackEvent(self._event, timeout=self._timeout)

    def _close(self) -> None:
        self._channel.close()


class HealthProber(_CallLoop):
    """``grpc.health.v1.Health/Check`` in a loop in a thread, on a channel opened
    (and checked once) before it starts: what a load balancer sees during an attack."""

    def __init__(self, address: str, *, pause: float = 0.002, timeout: float = 10.0) -> None:
        super().__init__(pause)
        self._request = health_pb2.HealthCheckRequest()
        self._channel = grpc.insecure_channel(address)
        stub: Any = health_pb2_grpc.HealthStub(self._channel)  # its stubs lack method types
        stub.Check(self._request, timeout=10)
        self._stub = stub
        self._timeout = timeout

    def _call(self) -> None:
        self._stub.Check(self._request, timeout=self._timeout)

    def _close(self) -> None:
        self._channel.close()
