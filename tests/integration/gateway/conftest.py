"""An HTTP client on the test server's gateway port."""

from tests.support.gateway import http  # noqa: F401 - fixtures
