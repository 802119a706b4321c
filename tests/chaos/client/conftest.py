"""Client fixtures: every test runs against the async and the sync client."""

from tests.support.client import analytics_client, mode, scripted, telemetry_client  # noqa: F401 - fixtures
