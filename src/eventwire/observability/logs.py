"""Structured logging on the standard library.

Call sites pass fields with ``extra={...}``; the text format renders them as
``key=value`` pairs and the JSON format as keys of one object per line.

:func:`configure` installs the one handler on the root logger, so that every
line the process writes has the one format: eventwire's own, and uvicorn's,
grpcio's, asyncio's (its "Task exception was never retrieved"), warnings,
and uncaught exceptions in any thread. Libraries log at WARNING and above;
eventwire at the configured level. (grpc's C core writes its own lines to
stderr, bypassing Python: with JSON logs :func:`route_native_stderr` turns those
lines into records of logger ``grpc.core``.) Identical warnings and errors are collapsed
by :class:`RepeatFilter`.
"""

from __future__ import annotations

import atexit
import faulthandler
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from types import TracebackType
from typing import Any, Final, TextIO

import orjson

from eventwire.observability.propagation import current_trace_id

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class LazyRequestId:
    """A gRPC call's request id, worked out only if something asks for it.

    Most calls never log a line: reading their metadata and drawing random
    bytes for each of them was per-call work for an id nobody saw.
    """

    __slots__ = ("_context", "_id")

    def __init__(self, context: Any) -> None:
        self._context = context
        self._id = ""

    def __call__(self) -> str:
        if not self._id:
            self._id = request_id_of(self._context.invocation_metadata())
        return self._id


REQUEST_ID: ContextVar[str | LazyRequestId] = ContextVar("eventwire_request_id", default="")
"""The id of the RPC or HTTP request being served (set by the front doors);
read it with :func:`current_request_id`."""


def current_request_id() -> str:
    """The id of the request being served, or "" outside any."""
    value = REQUEST_ID.get()
    return value if isinstance(value, str) else value()


def request_id_of(metadata: Any) -> str:
    """The caller's ``x-request-id`` when it is a usable one, else a new id."""
    for key, value in metadata or ():
        if key == "x-request-id" and isinstance(value, str) and 0 < len(value) <= 64:
            return value
    return new_request_id()


def new_request_id() -> str:
    """16 random hex digits for a request that brought no ``x-request-id``.

    Made for every such request, so from 8 random bytes directly: ``uuid4``
    built a UUID object for them (~1.7 % of a unary call's server time).
    """
    return os.urandom(8).hex()


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = {k: v for k, v in vars(record).items() if k not in _STANDARD}
    # Every line written while serving a request says which request, and which trace.
    request_id = current_request_id()
    if request_id and "request_id" not in fields:
        fields["request_id"] = request_id
    trace_id = current_trace_id()
    if trace_id:
        fields["trace_id"] = trace_id
    return fields


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        return f"{line} {extra}" if extra else line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


class RepeatFilter(logging.Filter):
    """Collapses repeated identical records into one line per interval, with a count.

    Records are identical when logger, level and message template (``msg``
    before its arguments) are: "commit failed: %s" while the disk is full is
    one failure, however many requests hit it. The first passes; the others in
    the next ``interval`` seconds are counted, and the next record of any kind
    after that (or :meth:`flush`, at exit) writes "... (repeated N times in the
    last T s)" with the last one's text and ``repeated=N``. Records below
    ``level`` pass untouched (debug logging wants every line).
    """

    def __init__(
        self,
        interval: float = 10.0,
        *,
        level: int = logging.WARNING,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 1024,
    ) -> None:
        super().__init__()
        self.interval = interval
        self.level = level
        self._clock = clock
        self._max_keys = max_keys
        self._windows: dict[tuple[str, int, str], _Window] = {}
        self._lock = threading.Lock()
        self.handler: logging.Handler | None = None
        """Where the summary lines go (:func:`configure` sets it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.level or hasattr(record, "repeated"):
            return True
        now = self._clock()
        key = (record.name, record.levelno, str(record.msg))
        with self._lock:
            due = self._take_due(now)
            window = self._windows.get(key)
            passes = window is None or now - window.start >= self.interval
            if window is not None and not passes:
                window.count += 1
                window.last = record
            else:
                if len(self._windows) >= self._max_keys:
                    self._windows.pop(next(iter(self._windows)))
                self._windows[key] = _Window(now)
        self._emit(due, now)
        return passes

    def flush(self) -> None:
        """Write the counts still held (the process is about to exit)."""
        now = self._clock()
        with self._lock:
            due = [w for w in self._windows.values() if w.count]
            self._windows.clear()
        self._emit(due, now)

    def _take_due(self, now: float) -> list[_Window]:
        due = []
        for key, window in list(self._windows.items()):
            if now - window.start >= self.interval:
                del self._windows[key]
                if window.count:
                    due.append(window)
        return due

    def _emit(self, due: list[_Window], now: float) -> None:
        if self.handler is None:
            return
        for window in due:
            last = window.last
            if last is None:
                continue
            summary = logging.makeLogRecord(vars(last))
            seconds = max(1, round(now - window.start))
            summary.msg = (
                f"{last.getMessage()} (repeated {window.count} times in the last {seconds} s)"
            )
            summary.args = None
            summary.exc_info = summary.exc_text = None
            summary.repeated = window.count
            self.handler.handle(summary)


class _Window:
    __slots__ = ("count", "last", "start")

    def __init__(self, start: float) -> None:
        self.start = start
        self.count = 0
        self.last: logging.LogRecord | None = None


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The one handler; writes the repeat counts it still holds when closed at exit."""

    def __init__(self, stream: TextIO, repeats: RepeatFilter) -> None:
        super().__init__(stream)
        self.repeats = repeats
        repeats.handler = self
        self.addFilter(repeats)

    def close(self) -> None:
        self.repeats.flush()
        super().close()


LIBRARY_LEVEL: Final = logging.WARNING
"""Other loggers (uvicorn, grpc, asyncio, ...) below this are dropped, unless the
configured level is debug: their INFO lines are chatter ("Started server process")."""


def configure(
    level: str = "info",
    fmt: str = "text",
    stream: TextIO | None = None,
    *,
    repeat_interval: float = 10.0,
) -> None:
    """One handler on the root logger, in ``fmt``; identical warnings and errors
    are collapsed per ``repeat_interval`` seconds (0: never)."""
    repeats = RepeatFilter(
        repeat_interval or 0.0, level=logging.WARNING if repeat_interval else logging.CRITICAL + 1
    )
    handler = _Handler(stream or sys.stderr, repeats)
    formatter = JsonFormatter() if fmt == "json" else TextFormatter()
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    numeric = logging.getLevelName(level.upper())
    root.setLevel(numeric if numeric <= logging.DEBUG else max(numeric, LIBRARY_LEVEL))
    ours = logging.getLogger("eventwire")
    ours.handlers.clear()
    ours.setLevel(numeric)
    ours.propagate = True
    # Loggers that set levels or handlers of their own would bypass the root's.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "asyncio", "grpc"):
        library = logging.getLogger(name)
        library.handlers.clear()
        library.setLevel(logging.NOTSET)
        library.propagate = True
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


_NATIVE: Final = re.compile(r"^([IWEF])\d{4} [\d:.]+\s+\d+ ([^\]]+)\] ?(.*)$")
_NATIVE_LEVELS: Final = {
    "I": logging.INFO,
    "W": logging.WARNING,
    "E": logging.ERROR,
    "F": logging.CRITICAL,
}
_native: list[TextIO] = []


def route_native_stderr() -> None:
    """With JSON logs on stderr, make what native code writes there log records.

    Called by the process that serves (a lone server, each worker), not by a
    supervisor: its workers inherit its stderr, and must not inherit a pipe
    that dies with it.
    """
    for handler in logging.getLogger().handlers:
        if (
            isinstance(handler, _Handler)
            and isinstance(handler.formatter, JsonFormatter)
            and handler.stream is sys.stderr
        ):
            handler.setStream(_route_native_stderr(handler))


def _route_native_stderr(handler: logging.Handler) -> TextIO:
    """Make what native code writes to file descriptor 2 log lines; the real stderr.

    grpc's C core logs through absl straight to fd 2 (``I1207 05:50:39.49 6193
    ssl_transport_security.cc:2563] Handshake failed ...``), which broke the
    one-format promise of the JSON log. With JSON logs, fd 2 becomes a pipe read by a thread
    that logs each line as logger ``grpc.core`` at the line's own level (so
    INFO chatter is dropped below ``--log-level debug``, like any library's),
    with its source as a field. Idempotent; crash dumps (faulthandler) go to
    the real stderr directly, since a dying process runs no thread.
    """
    if _native:
        return _native[0]
    sys.stderr.flush()
    try:
        real = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")
    except OSError:  # no stderr at all: nothing to route, nowhere to write
        return sys.stderr
    read, write = os.pipe()
    os.dup2(write, 2)
    os.close(write)
    pump = threading.Thread(
        target=_pump, args=(read, real, handler), name="eventwire-native-log", daemon=True
    )
    pump.start()
    faulthandler.enable(real)
    _native.append(real)

    def restore() -> None:
        # Closing the pipe's last writer ends the pump once it has read all.
        os.dup2(real.fileno(), 2)
        pump.join(1.0)

    atexit.register(restore)
    return real


def _pump(fd: int, real: TextIO, handler: logging.Handler) -> None:
    log = logging.getLogger("grpc.core")
    with os.fdopen(fd, "rb") as lines:
        for raw in lines:
            text = raw.decode(errors="replace").rstrip()
            if not text:
                continue
            if text.startswith("{"):
                # Already a log line (a child process sharing this stderr wrote it).
                handler.acquire()
                try:
                    real.write(text + "\n")
                finally:
                    handler.release()
                continue
            match = _NATIVE.match(text)
            if match is None:
                logging.getLogger("stderr").warning(text)
                continue
            level, source, message = match.groups()
            log.log(_NATIVE_LEVELS[level], message, extra={"source": source.strip()})


def _log_uncaught(
    kind: type[BaseException], value: BaseException, tb: TracebackType | None
) -> None:
    logging.getLogger("eventwire").critical("uncaught exception", exc_info=(kind, value, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit or args.exc_value is None:
        return
    logging.getLogger("eventwire").error(
        "uncaught exception in thread %s",
        args.thread.name if args.thread is not None else "?",
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )
