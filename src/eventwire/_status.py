"""Reading ``google.rpc`` error details sent with a status (not generated code)."""

from __future__ import annotations

from google.rpc import error_details_pb2, status_pb2


def field_violations(status: status_pb2.Status | None) -> list[tuple[str, str]]:
    """The ``(field, description)`` pairs of a status's ``BadRequest`` details."""
    if status is None:
        return []
    out: list[tuple[str, str]] = []
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            out.extend((v.field, v.description) for v in bad_request.field_violations)
    return out
