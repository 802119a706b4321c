"""TrackerConfig refuses settings that cannot work, with a message naming the field."""

from __future__ import annotations

import pytest

from eventwire.client import TrackerConfig


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="max_batch_events"):
        TrackerConfig(max_batch_events=20_000)
    with pytest.raises(ValueError, match="flush_interval"):
        TrackerConfig(flush_interval=0)
    with pytest.raises(ValueError, match="max_spool_bytes"):
        TrackerConfig(spool_dir="/tmp/x", max_spool_bytes=10)
