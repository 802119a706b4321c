"""Reading the ``google.rpc.Status`` a server sends with an error (not generated code)."""

from __future__ import annotations

from typing import Any, Protocol

from google.rpc import error_details_pb2, status_pb2

_DETAILS_KEY = "grpc-status-details-bin"


class _HasTrailingMetadata(Protocol):
    def trailing_metadata(self) -> Any: ...


def status_of(error: _HasTrailingMetadata) -> status_pb2.Status | None:
    """The rich status in an RPC error's trailing metadata, if the server sent one."""
    for key, value in error.trailing_metadata() or ():
        if key == _DETAILS_KEY and isinstance(value, bytes):
            return status_pb2.Status.FromString(value)
    return None


def field_violations(error: _HasTrailingMetadata) -> list[tuple[str, str]]:
    """The ``(field, description)`` pairs of the error's ``google.rpc.BadRequest``."""
    status = status_of(error)
    if status is None:
        return []
    out: list[tuple[str, str]] = []
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            out.extend((v.field, v.description) for v in bad_request.field_violations)
    return out
