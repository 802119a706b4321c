from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import orjson


def log_line(raw: bytes) -> dict[str, Any]:
    """One line of ``eventwire serve --log-format json``; a line that is not JSON
    (a traceback printed before logging was set up) becomes its ``msg``."""
    try:
        line: dict[str, Any] = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {"msg": raw.decode(errors="replace").rstrip()}
    return line


class ServerProcess:
    """``eventwire serve`` in a child process, for tests that kill or signal the server.

    The child logs JSON to stderr; :meth:`start` waits for its ``serving`` line
    and learns the bound addresses from it, so ``127.0.0.1:0`` works. A
    restarted server keeps the ports it had, so clients reconnect to the same
    target. Pass ``http_address=""`` to run without the HTTP gateway, and
    ``launcher`` to start it through another command (``["taskset", "-c", "0"]``
    pins every thread of the server, which pinning its pid later would not).
    ``program`` replaces ``python -m eventwire`` (a benchmark's own entry point
    that builds the server differently); ``serve`` and its arguments follow it.
    """

    def __init__(
        self,
        *args: str,
        address: str = "127.0.0.1:0",
        http_address: str = "127.0.0.1:0",
        env: Mapping[str, str] | None = None,
        launcher: Sequence[str] = (),
        program: Sequence[str] = (sys.executable, "-m", "eventwire"),
    ) -> None:
        self.args = list(args)
        self.launcher = list(launcher)
        self.program = list(program)
        self.requested_address = address
        self.requested_http_address = http_address
        self.http_address = ""
        self.metrics_address = ""
        self.env = dict(os.environ if env is None else env)
        self.address = ""
        self.logs: list[dict[str, object]] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def pid(self) -> int:
        return self._require().pid

    def start(self, timeout: float = 20.0) -> ServerProcess:
        argv = [
            *self.launcher,
            *self.program,
            "serve",
            "--address",
            self.address or self.requested_address,
            "--http-address",
            self.http_address or self.requested_http_address,
            "--metrics-address",
            self.metrics_address or "127.0.0.1:0",
            "--log-format",
            "json",
            *self.args,
        ]
        self._ready.clear()
        self._proc = subprocess.Popen(  # noqa: S603 - argv built above, no shell
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=self.env,
        )
        self._reader = threading.Thread(target=self._read, args=(self._proc,), daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"eventwire serve did not become ready; logs: {self.logs[-5:]}")
        return self

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None  # noqa: S101 - Popen was given stderr=PIPE
        for raw in proc.stderr:
            line = log_line(raw)
            self.logs.append(line)
            if line.get("msg") == "serving" and not self._ready.is_set():
                self.address = str(line["grpc_address"])
                self.http_address = str(line.get("http_address", ""))
                self.metrics_address = str(line.get("metrics_address", ""))
                self._ready.set()

    def restart(self, timeout: float = 20.0) -> ServerProcess:
        """Start again on the same address (after :meth:`kill` or :meth:`terminate`)."""
        if self._proc is not None and self._proc.poll() is None:
            raise RuntimeError("server is still running")
        return self.start(timeout)

    def terminate(self) -> None:
        """SIGTERM: the server drains and exits."""
        self._require().send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: no drain, no flush, like a crash or an OOM kill. No-op if never started."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def wait(self, timeout: float = 30.0) -> int:
        proc = self._require()
        code = proc.wait(timeout)
        if self._reader is not None:
            self._reader.join(timeout)
        return code

    def _require(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise RuntimeError("server process not started")
        return self._proc

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._proc is not None:
            self.kill()
