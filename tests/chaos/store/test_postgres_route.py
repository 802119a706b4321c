"""The fault-proxy rewrite of the PostgreSQL tests' URLs takes effect, or fails loudly."""

from __future__ import annotations

import pytest

from tests.chaos.store.postgres_route import rerouted, server_of


def test_the_server_is_the_one_the_url_names() -> None:
    assert server_of("postgresql://postgres@db.internal:6543/test") == "db.internal:6543"
    assert server_of("postgresql://postgres@127.0.0.1/test") == "127.0.0.1:5432"


def test_a_rewrite_keeps_everything_but_the_server() -> None:
    url = "postgresql://app:pw@127.0.0.1:5432/test?options=-csearch_path%3Dt_1"
    assert rerouted(url, "127.0.0.1:40001") == (
        "postgresql://app:pw@127.0.0.1:40001/test?options=-csearch_path%3Dt_1"
    )


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app@127.0.0.1:5432/test?host=127.0.0.2",  # the query wins over the URL
        "postgresql://app@127.0.0.1:5432/test?port=5433",
        "postgresql:///test?host=/var/run/postgresql",
    ],
)
def test_a_rewrite_that_would_not_take_effect_fails(url: str) -> None:
    with pytest.raises(AssertionError):
        rerouted(url, "127.0.0.1:40001")
