"""Errors the server's layers raise, each carrying a transport-neutral status code.

The ingest pipeline, the security policies and the stores raise these; each
front door (gRPC servicers, the HTTP gateway) maps them to its own status model
in one place, so both report the same failure the same way. :class:`Code`
carries the numbers of ``google.rpc.Code`` (the gRPC status codes), which is
what both front doors speak, without importing grpcio here.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import ClassVar, NamedTuple, TypeGuard


class Code(enum.IntEnum):
    """``google.rpc.Code``: the canonical status codes, by their wire numbers."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


def is_public(exc: BaseException) -> TypeGuard[ServiceError]:
    """Whether ``exc`` is a :class:`ServiceError` whose code and message the client may see."""
    return isinstance(exc, ServiceError) and exc.public


def internal_message(request_id: str) -> str:
    """All a caller is told of an error that is not public, on every door: the id
    its logged traceback carries, so an operator can find it."""
    return f"internal error (request id {request_id})"


class FieldViolation(NamedTuple):
    field: str
    """Path of the offending field, e.g. ``event_name`` or ``properties["plan"]``."""
    description: str


class ServiceError(Exception):
    """A request that failed; a bare ServiceError is an internal failure (never leaked)."""

    code = Code.INTERNAL
    public: ClassVar[bool] = False
    """Whether code and message are meant for the client. A bare ServiceError is
    an internal failure, reported as INTERNAL with a generic message; every
    subclass names a condition the client caused or can act on, and is public
    unless it says otherwise."""

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "public" not in cls.__dict__:
            cls.public = True

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(ServiceError):
    code = Code.INVALID_ARGUMENT

    def __init__(self, violations: Sequence[FieldViolation]) -> None:
        first = violations[0]
        more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
        super().__init__(f"invalid {first.field}: {first.description}{more}")
        self.violations = list(violations)


class NotFound(ServiceError):
    code = Code.NOT_FOUND


class OutOfRange(ServiceError):
    code = Code.OUT_OF_RANGE


class Unauthenticated(ServiceError):
    code = Code.UNAUTHENTICATED


class PermissionDenied(ServiceError):
    code = Code.PERMISSION_DENIED


class Overloaded(ServiceError):
    code = Code.RESOURCE_EXHAUSTED

    def __init__(self, message: str, retry_after_ms: int) -> None:
        super().__init__(message)
        self.retry_after_ms = retry_after_ms


class Unavailable(ServiceError):
    code = Code.UNAVAILABLE
