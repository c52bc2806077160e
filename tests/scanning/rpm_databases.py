"""RPM databases made by the real tools, for the scanner's tests: rpmdb.sqlite by `rpm` from
packages `rpmbuild` built, and the older Berkeley DB `Packages` by Berkeley DB's own
`db5.3_load` from the same headers (Debian's rpm reads such a file with its bdb_ro backend but
no longer writes one)."""

from __future__ import annotations

import shutil
import sqlite3
import struct
import subprocess
from pathlib import Path

import pytest


def rpm_database(folder: Path) -> bytes:
    """rpmdb.sqlite with three packages rpmbuild built and rpm installed (database only)."""
    if shutil.which("rpmbuild") is None:
        pytest.fail("rpmbuild is not installed (scripts/install-test-tools installs rpm)")
    packages = [
        ("openssl-libs", "1", "3.0.7", "24.el9"),
        ("bash", None, "5.1.8", "6.el9"),
        ("glibc", None, "2.34~rc1", "1.el9"),
    ]
    built = []
    for name, epoch, version, release in packages:
        spec = folder / f"{name}.spec"
        lines = [
            f"Name: {name}",
            f"Version: {version}",
            f"Release: {release}",
            *([f"Epoch: {epoch}"] if epoch else []),
            "Summary: a package for ecrd's scanner test",
            "License: MIT",
            "BuildArch: noarch",
            "%description",
            "test",
            "%files",
        ]
        spec.write_text("\n".join(lines) + "\n")
        done = subprocess.run(
            ["rpmbuild", "--define", f"_topdir {folder / 'build'}", "-bb", str(spec)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        built += list((folder / "build" / "RPMS" / "noarch").glob(f"{name}-*.rpm"))
    database = folder / "root" / "var" / "lib" / "rpm"
    database.mkdir(parents=True)
    installed = subprocess.run(
        ["rpm", "--dbpath", str(database), "-i", "--justdb", "--nodeps", *map(str, built)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    return (database / "rpmdb.sqlite").read_bytes()


def berkeley_db_of(
    sqlite_database: bytes, folder: Path, page_size: int = 4096, byte_order: int = 1234
) -> bytes:
    """The `Packages` file an rpm of Berkeley DB days would have made of the same headers:
    a hash database keyed by the package number (4 bytes, little-endian), written by
    db5.3_load from its text form; `byte_order` 4321 writes it big-endian (as on s390x)."""
    if shutil.which("db5.3_load") is None:
        pytest.fail("db5.3_load is not installed (scripts/install-test-tools installs it)")
    source = folder / "from.sqlite"
    source.write_bytes(sqlite_database)
    with sqlite3.connect(source) as connection:
        rows = connection.execute("SELECT hnum, blob FROM Packages ORDER BY hnum").fetchall()
    lines = ["VERSION=3", "format=print", "type=hash", "HEADER=END"]
    for number, blob in rows:
        lines += [" " + _printable(struct.pack("<I", number)), " " + _printable(blob)]
    lines.append("DATA=END")
    dump = folder / "packages.dump"
    dump.write_text("\n".join(lines) + "\n")
    target = folder / f"Packages-{page_size}-{byte_order}"
    settings = ["-c", f"db_pagesize={page_size}", "-c", f"db_lorder={byte_order}"]
    loaded = subprocess.run(
        ["db5.3_load", *settings, "-f", str(dump), str(target)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr
    return target.read_bytes()


def rpm_lists(berkeley_db: bytes, folder: Path) -> list[str]:
    """What real rpm lists from a Berkeley DB `Packages` file (name-version-release)."""
    database = folder / "bdb-check"
    database.mkdir(exist_ok=True)
    (database / "Packages").write_bytes(berkeley_db)
    listed = subprocess.run(
        ["rpm", "--dbpath", str(database), "--define", "_db_backend bdb_ro", "-qa",
         "--qf", "%{NAME}-%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\\n"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    return sorted(listed.stdout.split())


def _printable(data: bytes) -> str:
    # db_load's "print" form: printable bytes as they are, the others (and backslash) as \hh.
    return "".join(
        chr(byte) if 32 < byte < 127 and byte != 92 else f"\\{byte:02x}" for byte in data
    )
