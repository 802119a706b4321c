"""Errors the service layer raises, each carrying its gRPC status code.

The gRPC servicers and the HTTP gateway translate these into their own
responses, so both front doors report the same failure the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import grpc


class FieldViolation(NamedTuple):
    field: str
    """Path of the offending field, e.g. ``event_name`` or ``properties["plan"]``."""
    description: str


class ServiceError(Exception):
    code = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(ServiceError):
    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, violations: Sequence[FieldViolation]) -> None:
        first = violations[0]
        more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
        super().__init__(f"invalid {first.field}: {first.description}{more}")
        self.violations = list(violations)


class NotFound(ServiceError):
    code = grpc.StatusCode.NOT_FOUND


class Overloaded(ServiceError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED

    def __init__(self, message: str, retry_after_ms: int) -> None:
        super().__init__(message)
        self.retry_after_ms = retry_after_ms


class Unavailable(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE
