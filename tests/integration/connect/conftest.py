"""Fixtures of the Connect door tests."""

from tests.support.buf import buf  # noqa: F401 - fixture
