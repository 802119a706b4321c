"""The unit tier's rule, enforced: no network sockets and no subprocesses.

Loaded by tests/unit/conftest.py. A unit test that opens an AF_INET/AF_INET6
socket, starts a process, or makes a gRPC server or channel or a PostgreSQL
connection (their sockets live in C, out of Python's sight) fails with a
message saying which tier it belongs in. Unix socket pairs stay allowed:
every asyncio event loop makes one to wake itself up.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

_real_socket_init = socket.socket.__init__
_real_popen_init = subprocess.Popen.__init__


class IOInUnitTest(AssertionError):
    pass


def _guarded_socket_init(self: socket.socket, family: Any = -1, *args: Any, **kwargs: Any) -> None:
    if family in (socket.AF_INET, socket.AF_INET6) or (
        family == -1 and not args and "fileno" not in kwargs
    ):
        raise IOInUnitTest(
            "unit tests open no network sockets: move this test to tests/integration"
        )
    _real_socket_init(self, family, *args, **kwargs)


def _guarded_popen_init(self: subprocess.Popen[Any], *args: Any, **kwargs: Any) -> None:
    raise IOInUnitTest("unit tests start no processes: move this test to tests/integration")


def _refuse(what: str) -> Any:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise IOInUnitTest(f"unit tests make no {what}: move this test to tests/integration")

    return refuse


_C_SOCKETS = (
    ("grpc", "server", "gRPC server"),
    ("grpc", "insecure_channel", "gRPC channel"),
    ("grpc", "secure_channel", "gRPC channel"),
    ("grpc.aio", "server", "gRPC server"),
    ("grpc.aio", "insecure_channel", "gRPC channel"),
    ("grpc.aio", "secure_channel", "gRPC channel"),
    ("psycopg", "connect", "PostgreSQL connection"),
    ("psycopg.AsyncConnection", "connect", "PostgreSQL connection"),
)


# Package scope: in force before any module- or class-scoped fixture of the
# tier runs (those could otherwise start a server unseen), and lifted once the
# tier is done, so the other tiers in the same session are unaffected.
@pytest.fixture(scope="package", autouse=True)
def _no_io() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "__init__", _guarded_socket_init)
        patch.setattr(subprocess.Popen, "__init__", _guarded_popen_init)
        for target, name, what in _C_SOCKETS:
            patch.setattr(f"{target}.{name}", _refuse(what))
        yield
