"""Reads through the SDK: every test runs with the async client and its sync twin."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from tests.integration.client_reads.readers import Readers, readers
from tests.support.client import mode  # noqa: F401 - fixture
from tests.support.reads import read_server, read_store  # noqa: F401 - fixtures


@pytest.fixture
async def make_readers(mode: str) -> AsyncIterator[Callable[..., Readers]]:  # noqa: F811
    async for make in readers(mode):
        yield make
