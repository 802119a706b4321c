"""Helpers for testing eventwire and code that uses it: real servers, real faults."""

from __future__ import annotations

from eventwire.testing._proxy import FaultProxy
from eventwire.testing._server import running_server

__all__ = ["FaultProxy", "running_server"]
