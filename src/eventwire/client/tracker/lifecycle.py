"""The process around the trackers: flushed at interpreter exit, re-made after fork().

Trackers not closed yet are held here strongly: one that goes out of scope
with events queued must still be flushed at exit, as a running thread is
joined. In a forked child each is re-made empty (``_after_fork_in_child``),
and the parent's gRPC channel, event loop and threads it held are kept here,
unused, until exit: finalizing them would call into gRPC's core, which does
not survive fork() (it hangs or crashes the child).
"""

from __future__ import annotations

import atexit
import logging
import os
from typing import Protocol

# Imported before our atexit hook is registered, so that gRPC's own hooks are
# registered first: atexit runs ours first, while gRPC still works.
import grpc  # noqa: F401

__all__ = ["Owner", "forget", "inherit", "register"]

log = logging.getLogger("eventwire.client")


class Owner(Protocol):
    def _after_fork_in_child(self) -> None: ...

    def _at_exit(self) -> None: ...


_LIVE: set[Owner] = set()
_INHERITED: list[object] = []


def register(owner: Owner) -> None:
    _LIVE.add(owner)


def forget(owner: Owner) -> None:
    _LIVE.discard(owner)


def inherit(*objects: object) -> None:
    """Keep objects a forked child inherited (and must never finalize) alive until exit."""
    _INHERITED.append(objects)


def _reinit_after_fork() -> None:
    for owner in list(_LIVE):
        try:
            owner._after_fork_in_child()
        except Exception:
            log.exception("eventwire tracker: re-initialisation after fork failed")


def _exit_all() -> None:
    for owner in list(_LIVE):
        try:
            owner._at_exit()
        except Exception:
            log.exception("eventwire tracker: flush at exit failed")


os.register_at_fork(after_in_child=_reinit_after_fork)
atexit.register(_exit_all)
