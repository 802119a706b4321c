"""The unit tier's guard is really on: a socket, a process or a gRPC server here fails."""

from __future__ import annotations

import socket
import subprocess
import sys

import grpc
import pytest

from tests.support.no_io import IOInUnitTest


def test_a_network_socket_is_refused() -> None:
    with pytest.raises(IOInUnitTest, match="tests/integration"):
        socket.socket(socket.AF_INET, socket.SOCK_STREAM)


def test_a_subprocess_is_refused() -> None:
    with pytest.raises(IOInUnitTest, match="tests/integration"):
        subprocess.run([sys.executable, "-c", "pass"], check=False)


def test_a_grpc_server_is_refused() -> None:
    with pytest.raises(IOInUnitTest, match="gRPC server"):
        grpc.aio.server()


def test_a_unix_socket_pair_still_works() -> None:
    left, right = socket.socketpair()
    left.close()
    right.close()
