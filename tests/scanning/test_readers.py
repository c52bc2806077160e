"""The Go build information and RPM header readers on what a hostile or broken image may hold:
each answers "nothing here" rather than failing the scan."""

from __future__ import annotations

import io
import sqlite3
import struct
from pathlib import Path

import pytest

from ecrd.scanning.go_buildinfo import MAGIC, parse_blob, read_executable
from ecrd.scanning.rpmdb import HeaderInvalid, read_database, read_header

pytestmark = pytest.mark.metadata_independent


@pytest.mark.parametrize(
    "data",
    [
        b"",
        MAGIC,  # no header after the magic
        MAGIC + bytes([8, 0]) + bytes(16) + b"\x08go1.21.0",  # pre-1.18 layout (pointers)
        MAGIC + bytes([8, 2]) + bytes(16) + b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
        MAGIC + bytes([8, 2]) + bytes(16) + b"\x50go1",  # a length past the end
        MAGIC + bytes([8, 2]) + bytes(16) + b"\x04nogo\x00",  # not a Go version
    ],
)
def test_broken_build_information_is_nothing(data: bytes) -> None:
    assert parse_blob(data) is None


def test_a_magic_split_across_reads_is_found_and_non_elf_is_skipped() -> None:
    info = b"\tpath\tx\nmod\texample.com/x\tv1.2.3\t\n"
    blob = MAGIC + bytes([8, 2]) + bytes(16) + b"\x08go1.22.1" + bytes([len(info)]) + info
    # the magic straddles the reader's 1 MiB chunks
    program = b"\x7fELF" + bytes(1024 * 1024 - 10) + blob + bytes(64)
    build = read_executable(io.BytesIO(program))
    assert build is not None and build.go_version == "go1.22.1"
    assert build.main_module == ("example.com/x", "v1.2.3")
    assert read_executable(io.BytesIO(b"#!/bin/sh\n" + blob)) is None


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        struct.pack(">II", 1_000_000, 0),  # more entries than the blob holds
        struct.pack(">II", 1, 4) + struct.pack(">IIiI", 1000, 6, 99, 1) + b"abc\0",  # past data
        struct.pack(">II", 1, 4) + struct.pack(">IIiI", 1000, 6, -5, 1) + b"abc\0",
        struct.pack(">II", 1, 2) + struct.pack(">IIiI", 1003, 4, 0, 1) + b"\0\0",  # short int
    ],
)
def test_broken_headers_are_refused(blob: bytes) -> None:
    with pytest.raises(HeaderInvalid):
        read_header(blob)


def test_a_database_that_is_not_rpms_is_nothing(tmp_path: Path) -> None:
    assert read_database(b"not a database at all" * 100) == []
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE t (x)")
    assert read_database(other.read_bytes()) == []
    packages = tmp_path / "rpmdb.sqlite"
    with sqlite3.connect(packages) as connection:
        connection.execute("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, blob BLOB)")
        name = b"tool\0" + b"1.0\0" + b"2\0"
        entries = [(1000, 6, 0, 1), (1001, 6, 5, 1), (1002, 6, 9, 1)]
        header = struct.pack(">II", len(entries), len(name))
        header += b"".join(struct.pack(">IIiI", *entry) for entry in entries) + name
        connection.execute("INSERT INTO Packages (blob) VALUES (?), (?)", (header, b"junk"))
    [package] = read_database(packages.read_bytes())
    assert (package.name, package.version) == ("tool", "1.0-2")
