"""Helpers for testing eventwire and code that uses it: real servers, real faults.

* :func:`running_server`: a real eventwire server in this event loop, on a free port;
* :class:`FaultProxy`: a TCP proxy that injects latency, drops, resets and blackholes;
* :func:`no_backoff` / :func:`set_testing`: turn the client's backoff sleeps off
  (retries, deadlines and breakers still behave as in production).
"""

from __future__ import annotations

from eventwire.client._backoff import no_backoff, set_testing
from eventwire.testing._proxy import FaultProxy
from eventwire.testing._server import running_server

__all__ = ["FaultProxy", "no_backoff", "running_server", "set_testing"]
