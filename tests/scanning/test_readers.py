"""The Go build information and RPM database readers on what a hostile or broken image may
hold: each answers "nothing here" rather than failing the scan; and the Berkeley DB reader
against real rpm's own listing."""

from __future__ import annotations

import io
import sqlite3
import struct
from pathlib import Path

import pytest

from ecrd.scanning.go_buildinfo import MAGIC, parse_blob, read_executable
from ecrd.scanning.rpmdb import HeaderInvalid, read_bdb_database, read_database, read_header
from tests.scanning.rpm_databases import berkeley_db_of, rpm_database, rpm_lists

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


@pytest.fixture(scope="module")
def sqlite_rpmdb(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return rpm_database(tmp_path_factory.mktemp("rpmdb"))


@pytest.mark.parametrize(
    ("page_size", "byte_order"), [(512, 1234), (4096, 1234), (65536, 1234), (4096, 4321)]
)
def test_a_berkeley_db_rpm_database_lists_what_rpm_lists(
    sqlite_rpmdb: bytes, tmp_path: Path, page_size: int, byte_order: int
) -> None:
    # Given the Packages file of an rpm of Berkeley DB days, with pages so small that each
    # header spans several overflow pages, of the common size, and so large that every header
    # stays on its page; and one written big-endian
    packages = berkeley_db_of(sqlite_rpmdb, tmp_path, page_size, byte_order)
    # Then ecrd reads the packages real rpm (its bdb_ro backend) lists from it
    read = sorted(f"{p.name}-{p.version}" for p in read_bdb_database(packages))
    assert read == rpm_lists(packages, tmp_path)
    assert read == ["bash-5.1.8-6.el9", "glibc-2.34~rc1-1.el9", "openssl-libs-1:3.0.7-24.el9"]


def test_a_broken_berkeley_db_is_nothing_or_what_is_whole(
    sqlite_rpmdb: bytes, tmp_path: Path
) -> None:
    packages = berkeley_db_of(sqlite_rpmdb, tmp_path, 512)
    assert read_bdb_database(b"") == []
    assert read_bdb_database(b"\0" * 8192) == []
    assert read_bdb_database(sqlite_rpmdb) == []  # the other format
    # Truncated: the packages whose pages are all there, and no error for the others
    whole = {p.name for p in read_bdb_database(packages)}
    for cut in range(512, len(packages), 512 * 3):
        assert {p.name for p in read_bdb_database(packages[:cut])} <= whole
    # Every overflow page pointing at itself: a loop, which is skipped
    looped = bytearray(packages)
    for start in range(512, len(looped), 512):
        if looped[start + 25] == 7:
            looped[start + 16 : start + 20] = struct.pack("<I", start // 512)
    assert read_bdb_database(bytes(looped)) == []
