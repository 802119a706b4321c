"""grpc's C core writes its own lines to stderr; with JSON logs they arrive as JSON.

A TLS server that gets plain-text and garbage connections makes the core log
"Handshake failed ..." (absl's plain ``I1207 05:50:39.49 ... file.cc:123] ...``
format). The server process's stderr must hold JSON lines only, and at
``--log-level debug`` those lines appear as logger ``grpc.core`` records.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import trustme

from eventwire.testing._process import ServerProcess

JUNK = (
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(200),
)


def tls_args(tmp_path: Path) -> list[str]:
    cert = trustme.CA().issue_cert("127.0.0.1")
    (tmp_path / "cert.pem").write_bytes(b"".join(b.bytes() for b in cert.cert_chain_pems))
    (tmp_path / "key.pem").write_bytes(cert.private_key_pem.bytes())
    return ["--tls-cert", str(tmp_path / "cert.pem"), "--tls-key", str(tmp_path / "key.pem")]


def failed_handshakes(tmp_path: Path, *args: str) -> ServerProcess:
    proc = ServerProcess(
        "--store", f"sqlite:///{tmp_path / 'e.db'}", *tls_args(tmp_path), *args
    ).start()
    try:
        host, _, port = proc.address.rpartition(":")
        for junk in JUNK:
            with socket.create_connection((host, int(port)), timeout=5) as sock:
                sock.sendall(junk)
                sock.settimeout(2)
                try:
                    while sock.recv(4096):
                        pass
                except OSError:
                    pass
        time.sleep(0.5)
        proc.terminate()
        assert proc.wait() == 0
    finally:
        proc.kill()
    return proc


def test_stderr_holds_json_lines_only(tmp_path: Path) -> None:
    proc = failed_handshakes(tmp_path)
    # ServerProcess turns a line that is not JSON into {"msg": line} without "ts".
    assert [line for line in proc.logs if "ts" not in line] == []
    assert any(line["msg"] == "stopped" for line in proc.logs)


def test_core_lines_are_records_of_logger_grpc_core(tmp_path: Path) -> None:
    proc = failed_handshakes(tmp_path, "--log-level", "debug")
    assert [line for line in proc.logs if "ts" not in line] == []
    core = [line for line in proc.logs if line["logger"] == "grpc.core"]
    assert any("Handshake failed" in str(line["msg"]) for line in core), proc.logs
    assert all(".cc:" in str(line["source"]) for line in core), core
