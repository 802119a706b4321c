"""Full gRPC method names, read from the generated descriptors rather than spelled out.

A method renamed or removed in ``proto/`` fails here, at import, instead of
turning into an ``UNIMPLEMENTED`` at run time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from google.protobuf.descriptor import ServiceDescriptor

from eventwire.api import analytics_pb2, telemetry_pb2

ANALYTICS: Final = analytics_pb2.DESCRIPTOR.services_by_name["AnalyticsService"]
TELEMETRY: Final = telemetry_pb2.DESCRIPTOR.services_by_name["TelemetryService"]
SERVICES: Final = (ANALYTICS, TELEMETRY)
SERVICE_NAMES: Final = tuple(service.full_name for service in SERVICES)


def methods(service: ServiceDescriptor) -> Mapping[str, str]:
    """``{"TrackEvent": "/analytics.AnalyticsService/TrackEvent", ...}`` for ``service``."""
    return {m.name: f"/{service.full_name}/{m.name}" for m in service.methods}


ANALYTICS_METHODS: Final = methods(ANALYTICS)
TELEMETRY_METHODS: Final = methods(TELEMETRY)
