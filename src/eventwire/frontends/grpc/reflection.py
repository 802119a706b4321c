"""Server reflection in both protocols, ``grpc.reflection.v1`` and ``v1alpha``.

grpcio-reflection serves only ``v1alpha`` (grpc/grpc#38576), while current
tools (``buf curl --reflect-protocol grpc-v1``, grpc-java's clients) ask for
``v1``. The two protocols are the same messages under another package name, so
one servicer answers both: ``v1`` calls are decoded and encoded with the
``v1alpha`` message classes, which is byte for byte the same wire format. The
``v1`` file descriptor is derived from the ``v1alpha`` one (package renamed), so
that ``v1`` is listed and resolvable like every other service.

The error detail types (``google.rpc.Status``, ``BadRequest``, ``RetryInfo``...)
are registered in the descriptor pool reflection answers from, so tools render
the details of a failed call instead of printing base64.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from google.rpc import error_details_pb2, status_pb2
from grpc_reflection.v1alpha import reflection, reflection_pb2

V1_SERVICE_NAME: Final = "grpc.reflection.v1.ServerReflection"
V1ALPHA_SERVICE_NAME: Final = reflection.SERVICE_NAME
SERVICE_NAMES: Final = (V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME)
DETAIL_FILES: Final = (status_pb2.DESCRIPTOR.name, error_details_pb2.DESCRIPTOR.name)
"""The files of the error detail types; imported above, so in the default pool."""

_V1_FILE: Final = "grpc/reflection/v1/reflection.proto"
_ALPHA_PREFIX: Final = ".grpc.reflection.v1alpha."
_V1_PREFIX: Final = ".grpc.reflection.v1."


def _v1_descriptor() -> bytes:
    """The ``v1`` reflection file: the ``v1alpha`` one under the ``v1`` package."""
    file = descriptor_pb2.FileDescriptorProto.FromString(reflection_pb2.DESCRIPTOR.serialized_pb)
    file.name = _V1_FILE
    file.package = "grpc.reflection.v1"
    file.ClearField("options")  # v1alpha's language options (java package...)
    pending = list(file.message_type)
    while pending:
        message = pending.pop()
        pending.extend(message.nested_type)
        for field in message.field:
            if field.HasField("type_name"):  # set only on message and enum fields
                field.type_name = field.type_name.replace(_ALPHA_PREFIX, _V1_PREFIX)
    for service in file.service:
        for method in service.method:
            method.input_type = method.input_type.replace(_ALPHA_PREFIX, _V1_PREFIX)
            method.output_type = method.output_type.replace(_ALPHA_PREFIX, _V1_PREFIX)
    return file.SerializeToString()


def _register_v1(pool: descriptor_pool.DescriptorPool) -> None:
    try:
        pool.FindFileByName(_V1_FILE)
    except KeyError:
        pool.AddSerializedFile(_v1_descriptor())


def enable(server: Any, service_names: Iterable[str]) -> None:
    """Serve reflection (both protocols) about ``service_names`` and itself on ``server``."""
    _register_v1(descriptor_pool.Default())
    servicer = reflection.aio.ReflectionServicer((*service_names, *SERVICE_NAMES))
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    for name in SERVICE_NAMES:
        # The form generated code uses (a grpc.aio.Server or the front door's registrar).
        server.add_registered_method_handlers(name, {"ServerReflectionInfo": handler})
