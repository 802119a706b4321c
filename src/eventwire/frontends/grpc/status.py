"""The one place service errors become gRPC status.

Unexpected exceptions never reach grpcio (which would send their text to the
client as UNKNOWN): they become INTERNAL with a generic message and a request
id, and are logged with that id. ``INVALID_ARGUMENT`` carries a
``google.rpc.BadRequest`` in ``grpc-status-details-bin``; ``RESOURCE_EXHAUSTED``
carries ``grpc-retry-pushback-ms``.
"""

from __future__ import annotations

import logging
from typing import Final, NoReturn

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from eventwire._errors import Code, InvalidArgument, Overloaded, ServiceError, internal_message
from eventwire.observability.logs import current_request_id, new_request_id

log = logging.getLogger("eventwire.server")

_BY_NUMBER: Final = {code.value[0]: code for code in grpc.StatusCode}


def grpc_code(code: Code) -> grpc.StatusCode:
    """The grpcio status code of one of eventwire's transport-neutral codes."""
    return _BY_NUMBER[int(code)]


def _details(err: InvalidArgument) -> bytes:
    bad_request = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in err.violations
        ]
    )
    detail = any_pb2.Any()
    detail.Pack(bad_request)
    status = status_pb2.Status(code=int(err.code), message=err.message, details=[detail])
    encoded: bytes = status.SerializeToString()
    return encoded


async def abort(context: grpc.aio.ServicerContext[object, object], err: ServiceError) -> NoReturn:
    metadata: list[tuple[str, str | bytes]] = []
    if isinstance(err, InvalidArgument):
        metadata.append(("grpc-status-details-bin", _details(err)))
    elif isinstance(err, Overloaded):
        metadata.append(("grpc-retry-pushback-ms", str(err.retry_after_ms)))
    await context.abort(grpc_code(err.code), err.message, trailing_metadata=tuple(metadata))


async def internal_error(
    context: grpc.aio.ServicerContext[object, object], exc: BaseException
) -> NoReturn:
    """INTERNAL with a generic message and the request id; the exception is logged."""
    request_id = current_request_id() or new_request_id()
    log.error(
        "unexpected error in %s",
        context.peer(),
        exc_info=exc,
        extra={"request_id": request_id},
    )
    await context.abort(grpc.StatusCode.INTERNAL, internal_message(request_id))
