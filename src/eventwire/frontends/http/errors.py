"""The gateway's one error model: ``google.rpc.Status`` as JSON, on the mapped HTTP status.

Every failure the gateway reports, whether the service raised it or the HTTP
layer found the request unusable, has the same body::

    {"code": 3, "message": "...", "details": [{"@type": ".../google.rpc.BadRequest",
                                               "fieldViolations": [...]}]}

``code`` is the numeric gRPC status code, so a client can handle both front
doors with one table. The HTTP status follows the mapping in googleapis'
``google/rpc/code.proto`` (the one grpc-gateway and Envoy's transcoder use).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Final

import orjson

from eventwire._errors import Code, FieldViolation, InvalidArgument, Overloaded, ServiceError

HTTP_STATUS: Final[dict[Code, int]] = {
    Code.OK: 200,
    Code.CANCELLED: 499,
    Code.UNKNOWN: 500,
    Code.INVALID_ARGUMENT: 400,
    Code.DEADLINE_EXCEEDED: 504,
    Code.NOT_FOUND: 404,
    Code.ALREADY_EXISTS: 409,
    Code.PERMISSION_DENIED: 403,
    Code.UNAUTHENTICATED: 401,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.FAILED_PRECONDITION: 400,
    Code.ABORTED: 409,
    Code.OUT_OF_RANGE: 400,
    Code.UNIMPLEMENTED: 501,
    Code.INTERNAL: 500,
    Code.UNAVAILABLE: 503,
    Code.DATA_LOSS: 500,
}

HTTP_ONLY: Final[dict[int, Code]] = {
    404: Code.NOT_FOUND,
    405: Code.UNIMPLEMENTED,  # gRPC: an unknown method
    408: Code.DEADLINE_EXCEEDED,  # the request did not arrive in time
    413: Code.RESOURCE_EXHAUSTED,  # gRPC: a message above the size limit
    415: Code.INVALID_ARGUMENT,  # gRPC: a request that cannot be decoded
    431: Code.RESOURCE_EXHAUSTED,  # gRPC: metadata above the size limit
    501: Code.UNIMPLEMENTED,  # a transfer coding the server does not decode
    503: Code.UNAVAILABLE,  # connection cap: retry later
}
"""The ``code`` of errors only HTTP has, chosen as the gRPC door answers the same
condition, so that one table of codes serves both doors."""

BAD_REQUEST_TYPE: Final = "type.googleapis.com/google.rpc.BadRequest"
RETRY_INFO_TYPE: Final = "type.googleapis.com/google.rpc.RetryInfo"


class HttpError(Exception):
    """A request the HTTP layer refuses before the service sees it."""

    def __init__(
        self,
        http_status: int,
        message: str,
        *,
        code: Code = Code.INVALID_ARGUMENT,
        violations: Sequence[FieldViolation] = (),
        headers: Sequence[tuple[bytes, bytes]] = (),
        retry_after_ms: int | None = None,
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.code = code
        self.message = message
        self.violations = list(violations)
        self.headers = list(headers)
        self.retry_after_ms = retry_after_ms

    def body(self) -> bytes:
        return status_body(self.code, self.message, self.violations, self.retry_after_ms)


def violations_json(violations: Sequence[FieldViolation]) -> list[dict[str, str]]:
    return [{"field": v.field, "description": v.description} for v in violations]


def status_body(
    code: Code,
    message: str,
    violations: Sequence[FieldViolation] = (),
    retry_after_ms: int | None = None,
) -> bytes:
    details: list[dict[str, Any]] = []
    if violations:
        details.append({"@type": BAD_REQUEST_TYPE, "fieldViolations": violations_json(violations)})
    if retry_after_ms is not None:
        # google.protobuf.Duration's JSON form: decimal seconds with an "s" suffix.
        details.append({"@type": RETRY_INFO_TYPE, "retryDelay": f"{retry_after_ms / 1000:.3f}s"})
    body: dict[str, Any] = {"code": int(code), "message": message, "details": details}
    return orjson.dumps(body)


def from_service_error(err: ServiceError) -> HttpError:
    """The HTTP rendering of an error the service layer raised on purpose."""
    violations = err.violations if isinstance(err, InvalidArgument) else ()
    headers: list[tuple[bytes, bytes]] = []
    retry_after_ms = None
    if isinstance(err, Overloaded):
        # Retry-After only carries whole seconds; the exact hint travels in RetryInfo.
        retry_after_ms = err.retry_after_ms
        seconds = max(1, math.ceil(retry_after_ms / 1000))
        headers.append((b"retry-after", str(seconds).encode()))
    return HttpError(
        HTTP_STATUS.get(err.code, 500),
        err.message,
        code=err.code,
        violations=violations,
        headers=headers,
        retry_after_ms=retry_after_ms,
    )
