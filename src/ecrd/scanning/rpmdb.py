"""Installed RPM packages, read from rpm's SQLite database (`var/lib/rpm/rpmdb.sqlite`: Fedora
33+, RHEL/AlmaLinux/Rocky 9, Amazon Linux 2023, openSUSE Tumbleweed), with Python's own sqlite3.

Its `Packages` table holds one row per package, each an rpm header blob: two big-endian
32-bit counts (index entries, data bytes), that many 16-byte index entries (tag, type,
offset into the data, count) and the data. ecrd reads four tags from it: NAME, VERSION,
RELEASE and EPOCH (the RPM distributions' OSV advisories name binary packages, so the source
package is not needed). No PyPI library reads these headers, hence this reader.

The older Berkeley DB database (`Packages`: RHEL and CentOS 7 and 8, Amazon Linux 2) holds the
same header blobs as values of a hash database (`scanning.berkeley_db`). The NDB format
(`Packages.db`: SUSE Linux Enterprise 15) is not read.
"""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from ecrd.scanning.berkeley_db import NotHashDatabase, hash_values

RPMDB_SQLITE = "var/lib/rpm/rpmdb.sqlite"
RPMDB_BDB = "var/lib/rpm/Packages"
_NAME, _VERSION, _RELEASE, _EPOCH = 1000, 1001, 1002, 1003
_WANTED = frozenset({_NAME, _VERSION, _RELEASE, _EPOCH})
_INT32, _STRING = 4, 6
# More index entries than any package has; a blob claiming more is not a header.
_MAX_ENTRIES = 65536
_MAX_PACKAGES = 100_000


@dataclass(frozen=True)
class RpmPackage:
    name: str
    version: str  # `[epoch:]version-release`, as rpm and OSV write an EVR


class HeaderInvalid(ValueError):
    pass


def _text(data: bytes, offset: int) -> str:
    end = data.find(b"\0", offset)
    if offset < 0 or offset >= len(data) or end < 0:
        raise HeaderInvalid("a string outside the header's data")
    return data[offset:end].decode("utf-8", "replace")


def read_header(blob: bytes) -> dict[int, str | int]:
    """The wanted tags of one header blob."""
    if len(blob) < 8:
        raise HeaderInvalid("too short for a header")
    entries, data_bytes = struct.unpack_from(">II", blob)
    data_start = 8 + 16 * entries
    if entries > _MAX_ENTRIES or data_start + data_bytes > len(blob):
        raise HeaderInvalid("the counts do not fit the blob")
    data = blob[data_start : data_start + data_bytes]
    found: dict[int, str | int] = {}
    for position in range(8, data_start, 16):
        tag, kind, offset, _count = struct.unpack_from(">IIiI", blob, position)
        if tag not in _WANTED:
            continue
        if kind == _STRING:
            found[tag] = _text(data, offset)
        elif kind == _INT32:
            if not 0 <= offset <= len(data) - 4:
                raise HeaderInvalid("a number outside the header's data")
            found[tag] = struct.unpack_from(">i", data, offset)[0]
    return found


def _package(fields: dict[int, str | int]) -> RpmPackage | None:
    name, version, release = fields.get(_NAME), fields.get(_VERSION), fields.get(_RELEASE)
    if not isinstance(name, str) or not isinstance(version, str) or not name:
        return None
    if name == "gpg-pubkey":  # an imported signing key, not software
        return None
    evr = f"{version}-{release}" if isinstance(release, str) and release else version
    epoch = fields.get(_EPOCH)
    if isinstance(epoch, int) and epoch > 0:
        evr = f"{epoch}:{evr}"
    return RpmPackage(name, evr)


def read_database(data: bytes) -> list[RpmPackage]:
    """The packages of an rpmdb.sqlite file's bytes; [] when they are not such a database."""
    # A database left in WAL mode says so in its header (bytes 18 and 19 are 2); an image's
    # copy is read alone (any -wal file is not), so it is opened as a rollback-journal one.
    if len(data) > 20 and data[18:20] == b"\x02\x02":
        data = data[:18] + b"\x01\x01" + data[20:]
    connection = sqlite3.connect(":memory:")
    try:
        with contextlib.suppress(sqlite3.Error):
            connection.deserialize(data)
            rows = connection.execute(
                "SELECT blob FROM Packages ORDER BY hnum LIMIT ?", (_MAX_PACKAGES,)
            ).fetchall()
            return _packages(blob for (blob,) in rows if isinstance(blob, bytes))
        return []
    finally:
        connection.close()


def read_bdb_database(data: bytes) -> list[RpmPackage]:
    """The packages of a Berkeley DB `Packages` file's bytes; [] when it is not one."""
    try:
        return _packages(itertools.islice(hash_values(data), _MAX_PACKAGES))
    except NotHashDatabase:
        return []


def _packages(blobs: Iterable[bytes]) -> list[RpmPackage]:
    found = []
    for blob in blobs:
        with contextlib.suppress(HeaderInvalid):
            package = _package(read_header(blob))
            if package is not None:
                found.append(package)
    return found
