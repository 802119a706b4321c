"""The fast tier: pure logic, real files at most. No sockets, no processes (enforced)."""

from tests.support.no_io import _no_io  # noqa: F401 - autouse fixture
