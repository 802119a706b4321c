"""The audit line: one INFO record per admin operation, on either door.

Admin operations change what the server does with data it already holds
(pausing or replaying a destination, applying a plan, replaying or
discarding quarantine); each is logged, whatever its outcome, on logger
``eventwire.audit``: which operation, for which tenant, with which token (its
``token_id``: the first 12 hex digits of its SHA-256, as its line in the token
file starts, never the token), and how it ended (``status``: the HTTP status
on the gateway, the gRPC code on the gRPC door).
"""

from __future__ import annotations

import logging
from typing import Final

from eventwire.observability.logs import current_request_id
from eventwire.security.auth import Caller

audit: Final = logging.getLogger("eventwire.audit")


def admin_operation(operation: str, caller: Caller, status: int | str) -> None:
    """Log that ``caller`` ran ``operation`` (``AnalyticsService.X``) and how it ended."""
    audit.info(
        "admin operation %s by tenant %r ended with %s",
        operation,
        caller.tenant,
        status,
        extra={
            "operation": operation,
            "tenant": caller.tenant,
            "token_id": caller.token_id,
            "status": status,
            "request_id": current_request_id(),
        },
    )
