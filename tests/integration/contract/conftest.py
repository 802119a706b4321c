"""buf for the contract checks."""

from tests.support.buf import buf  # noqa: F401 - fixture
