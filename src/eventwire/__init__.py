"""eventwire: move analytics events and device alerts between services over gRPC.

The server lives in :mod:`eventwire.server`, the generated API in
:mod:`eventwire.api`, test helpers in :mod:`eventwire.testing`.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
