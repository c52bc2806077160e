"""The logging setup, applied by uvicorn in every server process (`log_config`).

Every record goes to stderr through one handler, as one line: text for people

    2025-06-01T10:00:00.123Z INFO ecrd.access: request_id=... status=200 ...

or, with `log_format = "json"`, one JSON object per line for machines

    {"time": "2025-06-01T10:00:00.123Z", "level": "INFO", "logger": "ecrd.access", ...}

Times are UTC. uvicorn's own access log is off: `ecrd.access` (access_log.py) replaces it.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from ecrd.observability.access_log import AccessEntry

TLS_PROBE = "a TLS handshake on the plain-HTTP port (a client probing for https)"
MALFORMED = "malformed request"
_INVALID_REQUEST = "Invalid HTTP request received."
# A TLS record of type handshake (0x16), protocol major version 3 (SSL 3.0 to TLS 1.3).
_TLS_HANDSHAKE = b"\x16\x03"


class _Seconds:
    """The last second formatted, since most lines fall in the same second as the one before."""

    second = -1
    text = ""


def utc_time(record: logging.LogRecord) -> str:
    second = int(record.created)
    if second != _Seconds.second:
        _Seconds.text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _Seconds.second = second
    return f"{_Seconds.text}.{int(record.msecs):03d}Z"


class TextFormatter(logging.Formatter):
    """`<time> <level> <logger>: <message>`, then the traceback's lines when there is one.
    Written out rather than as a format string, which is cheaper for a line written once
    per request."""

    # uvicorn passes use_colors to the formatters it knows when told to; lines have none.
    def __init__(self, use_colors: bool | None = None) -> None:
        super().__init__()

    def format(self, record: logging.LogRecord) -> str:
        line = f"{utc_time(record)} {record.levelname} {record.name}: {record.getMessage()}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        if record.stack_info:
            line = f"{line}\n{self.formatStack(record.stack_info)}"
        return line


class JsonFormatter(logging.Formatter):
    """time, level, logger, message; an access line's fields as members of their own; the
    traceback, when there is one, as `exception`."""

    def __init__(self, use_colors: bool | None = None) -> None:
        super().__init__()

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": utc_time(record),
            "level": record.levelname,
            "logger": record.name,
        }
        arguments = record.args
        if isinstance(arguments, tuple) and len(arguments) == 1:
            entry = arguments[0]
            if isinstance(entry, AccessEntry):
                line["message"] = f"{entry.method} {entry.path} {entry.status}"
                line.update(entry.fields())
        if "message" not in line:
            line["message"] = record.getMessage()
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line)


def _refused_start() -> bytes | None:
    """The first two bytes of what uvicorn's parser refused, or None when they cannot be had.

    uvicorn puts nothing about them in the record, but it logs while it handles the parser's
    error, in the data_received call whose `data` it was: the first frame of that error's
    traceback.
    """
    error = sys.exception()
    traceback = error.__traceback__ if error is not None else None
    if traceback is None:
        return None
    data = traceback.tb_frame.f_locals.get("data")
    return bytes(data[:2]) if isinstance(data, bytes | bytearray) else None


class InvalidRequestsAtDebug(logging.Filter):
    """uvicorn warns "Invalid HTTP request received." for every request its parser refuses,
    and skopeo and podman send a TLS ClientHello to a plain-HTTP port before they fall back:
    a warning per pull that is nobody's fault. The record becomes a debug line with its
    reason, shown only when the logger is at debug."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != _INVALID_REQUEST:
            return True
        reason = TLS_PROBE if _refused_start() == _TLS_HANDSHAKE else MALFORMED
        record.levelno = logging.DEBUG
        record.levelname = logging.getLevelName(logging.DEBUG)
        record.msg = "Invalid HTTP request received: %s"
        record.args = (reason,)
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def log_config(level: str, log_format: str) -> dict[str, Any]:
    """The dictConfig for uvicorn's `log_config` (uvicorn sets its own loggers' levels to
    `level` after applying it)."""
    formatter = {"()": JsonFormatter if log_format == "json" else TextFormatter}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        # uvicorn looks these two names up when it is told to colour lines.
        "formatters": {"default": formatter, "access": dict(formatter)},
        "filters": {"invalid_requests": {"()": InvalidRequestsAtDebug}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": "ext://sys.stderr",
            },
        },
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO", "filters": ["invalid_requests"]},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            "ecrd": {"handlers": ["default"], "level": level.upper(), "propagate": False},
        },
        # Libraries' warnings (SQLAlchemy, asyncio) in the same format.
        "root": {"handlers": ["default"], "level": "WARNING"},
    }
