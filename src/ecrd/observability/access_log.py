"""One access-log line per request, on the `ecrd.access` logger at info.

In text (logfmt, one `key=value` per field):

    request_id=7c1e... principal=arn:aws:iam::000000000000:root method=GET
    path=/v2/team/hello/manifests/latest route=/v2/{name}/manifests/{reference} status=200
    bytes_in=0 bytes_out=1234 duration_ms=1.204

In JSON the same fields are members of the line's object (see log_config.py). The path is
the one on the wire (percent-encoded), with its query; a presigned download URL's signature
is replaced by REDACTED, since the URL is a credential while it is valid. Headers, and so
tokens and Authorization, are never logged.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from ecrd.auth.tokens import SIGNATURE_PARAMETER

logger = logging.getLogger("ecrd.access")
_SIGNATURE_BYTES = SIGNATURE_PARAMETER.encode()
_SIGNATURE = re.compile(rf"({SIGNATURE_PARAMETER}=)[^&]*")
# Anything a terminal or a log parser could take for a separator or a control.
_UNSAFE = re.compile(r"[^\x21-\x7e]")


def _escaped(match: re.Match[str]) -> str:
    return "".join(f"%{byte:02X}" for byte in match.group().encode("latin-1"))


def loggable_path(raw_path: bytes, query_string: bytes) -> str:
    """The request target as sent, with a download URL's signature hidden and any byte that
    is not printable ASCII percent-encoded (one log line stays one line)."""
    path = raw_path.decode("latin-1")
    if query_string:
        query = query_string.decode("latin-1")
        if _SIGNATURE_BYTES in query_string:
            query = _SIGNATURE.sub(r"\1REDACTED", query)
        path = f"{path}?{query}"
    if _UNSAFE.search(path) is not None:
        path = _UNSAFE.sub(_escaped, path)
    return path


@dataclass(frozen=True, slots=True)
class AccessEntry:
    """The fields of one access-log line; `str()` is the text form."""

    request_id: str
    principal: str
    method: str
    path: str
    door: str
    route: str
    status: int
    bytes_in: int
    bytes_out: int
    duration_seconds: float

    def __str__(self) -> str:
        # `route` is the operation on the API door, where every path is "/".
        return (
            f"request_id={self.request_id} principal={self.principal} method={self.method} "
            f"path={self.path} route={self.route} status={self.status} "
            f"bytes_in={self.bytes_in} bytes_out={self.bytes_out} "
            f"duration_ms={self.duration_seconds * 1000:.3f}"
        )

    def fields(self) -> dict[str, Any]:
        """The members of the JSON form."""
        return {
            "request_id": self.request_id,
            "principal": self.principal,
            "method": self.method,
            "path": self.path,
            "door": self.door,
            "route": self.route,
            "status": self.status,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "duration_ms": round(self.duration_seconds * 1000, 3),
        }


def write(entry: AccessEntry) -> None:
    """Log the line. The record is handed to the logger directly: `logger.info` would first
    walk the stack for a file and line number that no line shows (a third of its cost)."""
    logger.handle(logging.LogRecord(logger.name, logging.INFO, __file__, 0, "%s", (entry,), None))
