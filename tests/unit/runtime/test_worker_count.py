"""--workers 0 (auto) means one process with SQLite."""

from __future__ import annotations

import os
from pathlib import Path


def test_auto_is_one_process_with_sqlite(tmp_path: Path) -> None:
    from eventwire.config import ServerConfig
    from eventwire.runtime.supervisor import worker_count

    assert worker_count(ServerConfig(store=f"sqlite:///{tmp_path / 'a.db'}")) == 1
    assert worker_count(ServerConfig(store="postgresql://h/db")) == len(os.sched_getaffinity(0))
    assert worker_count(ServerConfig(workers=3)) == 3
