"""What an image has installed, read from its layers as a container runtime would stack them
(later layers win; `.wh.` whiteouts delete, `.wh..wh..opq` empties a directory).

Only the files that name installed packages are kept from each layer, each at most
MAX_FILE_BYTES: the dpkg status file (Debian, Ubuntu), the apk database (Alpine), rpm's
SQLite database (Fedora, RHEL 9 and its rebuilds, Amazon Linux 2023) or Berkeley DB one (RHEL
and CentOS 7 and 8, Amazon Linux 2; either at most MAX_RPMDB_BYTES),
Python `*.dist-info/METADATA`, npm's `node_modules/<name>/package.json`, and
`etc/os-release` (which release the OS packages belong to). Of executable files (ELF, at most
MAX_EXECUTABLE_BYTES) only the Go build information is kept: the Go version (OSV's `stdlib`
package) and the modules linked in.
A layer is read as a stream of its tar entries (gzip or plain), never whole in memory.
"""

from __future__ import annotations

import json
import posixpath
import re
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from email.parser import HeaderParser
from typing import IO

from ecrd.scanning.go_buildinfo import GoBuild, read_executable
from ecrd.scanning.rpmdb import RPMDB_BDB, RPMDB_SQLITE, read_bdb_database, read_database

MAX_FILE_BYTES = 8 * 1024 * 1024
MAX_RPMDB_BYTES = 256 * 1024 * 1024
MAX_EXECUTABLE_BYTES = 1024 * 1024 * 1024
DPKG_STATUS = "var/lib/dpkg/status"
APK_INSTALLED = "lib/apk/db/installed"
OS_RELEASE = ("etc/os-release", "usr/lib/os-release")


@dataclass(frozen=True)
class Package:
    """An installed package: its name as the image has it, the name advisories use (a Debian
    binary's source package, an Alpine package's origin), its version and OSV ecosystem."""

    name: str
    advisory_name: str
    version: str
    ecosystem: str


def _wanted(path: str) -> bool:
    return (
        path in (DPKG_STATUS, APK_INSTALLED, RPMDB_SQLITE, RPMDB_BDB, *OS_RELEASE)
        or (path.endswith(".dist-info/METADATA") and "site-packages/" in path)
        or _is_npm_manifest(path)
    )


def _is_npm_manifest(path: str) -> bool:
    """`.../node_modules/<name>/package.json` or `.../node_modules/@scope/<name>/package.json`."""
    parts = path.split("/")
    if len(parts) < 3 or parts[-1] != "package.json":
        return False
    if parts[-3] == "node_modules":
        return not parts[-2].startswith("@")
    return len(parts) >= 4 and parts[-4] == "node_modules" and parts[-3].startswith("@")


class Filesystem:
    """The wanted files of the layers read so far, and the Go programs, by path."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.go_programs: dict[str, GoBuild] = {}

    def _remove(self, gone: str, prefix: str) -> None:
        """Remove `gone` and everything under `prefix` (a whiteout, an opaque directory)."""
        for found in (self.files, self.go_programs):
            for known in [p for p in found if p == gone or p.startswith(prefix)]:
                del found[known]

    def apply_layer(self, stream: IO[bytes]) -> None:
        """Stack one layer (a tar stream, gzip or not) on what is there."""
        with tarfile.open(fileobj=stream, mode="r|*") as layer:
            for member in layer:
                path = posixpath.normpath(member.name.lstrip("./")).lstrip("/")
                folder, base = posixpath.split(path)
                if base == ".wh..wh..opq":
                    self._remove("", f"{folder}/" if folder else "")
                    continue
                if base.startswith(".wh."):
                    gone = posixpath.join(folder, base[len(".wh.") :])
                    self._remove(gone, gone + "/")
                    continue
                # What a later layer puts at a path replaces what was there.
                self.go_programs.pop(path, None)
                if not _wanted(path):
                    if _maybe_program(member):
                        self._read_program(layer, member, path)
                    continue
                limit = MAX_RPMDB_BYTES if path in (RPMDB_SQLITE, RPMDB_BDB) else MAX_FILE_BYTES
                if not member.isfile() or member.size > limit:
                    self.files.pop(path, None)
                    continue
                extracted = layer.extractfile(member)
                if extracted is not None:
                    self.files[path] = extracted.read(limit)

    def _read_program(self, layer: tarfile.TarFile, member: tarfile.TarInfo, path: str) -> None:
        extracted = layer.extractfile(member)
        build = read_executable(extracted) if extracted is not None else None
        if build is not None:
            self.go_programs[path] = build

    def packages(self) -> list[Package]:
        os_ecosystem = self._os_ecosystem()
        found: list[Package] = []
        if DPKG_STATUS in self.files:
            found += _dpkg(self.files[DPKG_STATUS].decode("utf-8", "replace"), os_ecosystem)
        if APK_INSTALLED in self.files:
            found += _apk(self.files[APK_INSTALLED].decode("utf-8", "replace"), os_ecosystem)
        # rpm's SQLite database where there is one (a release that moved to it may keep its
        # old Berkeley DB file), else the Berkeley DB one.
        rpms = (
            read_database(self.files[RPMDB_SQLITE])
            if RPMDB_SQLITE in self.files
            else read_bdb_database(self.files[RPMDB_BDB])
            if RPMDB_BDB in self.files
            else []
        )
        for rpm in rpms:
            found.append(Package(rpm.name, rpm.name, rpm.version, os_ecosystem["rpm"]))
        for _path, build in sorted(self.go_programs.items()):
            found += _go(build)
        for path, data in sorted(self.files.items()):
            if _is_npm_manifest(path):
                found += _npm(data)
            elif path.endswith(".dist-info/METADATA"):
                headers = HeaderParser().parsestr(data.decode("utf-8", "replace"))
                name, version = headers.get("Name"), headers.get("Version")
                if name and version:
                    normal = name.lower().replace("_", "-").replace(".", "-")
                    found.append(Package(name, normal, version, "PyPI"))
        return found

    def _os_ecosystem(self) -> dict[str, str]:
        """`Debian:12`, `Alpine:v3.19`: OSV's ecosystem names for the image's release."""
        values: dict[str, str] = {}
        for path in OS_RELEASE:
            if path in self.files:
                for line in self.files[path].decode("utf-8", "replace").splitlines():
                    key, _, value = line.partition("=")
                    values[key.strip()] = value.strip().strip('"')
                break
        release = values.get("VERSION_ID", "")
        ecosystems = {"debian": "Debian", "alpine": "Alpine", "rpm": _rpm_ecosystem(values)}
        if values.get("ID") == "debian":
            ecosystems["debian"] = f"Debian:{release.split('.')[0]}" if release else "Debian"
        if values.get("ID") == "ubuntu":
            ecosystems["debian"] = f"Ubuntu:{release}" if release else "Ubuntu"
        if values.get("ID") == "alpine":
            minor = ".".join(release.split(".")[:2])
            ecosystems["alpine"] = f"Alpine:v{minor}" if minor else "Alpine"
        return ecosystems


# OSV's names of the RPM distributions (os-release ID -> ecosystem); with the major release
# where OSV writes one. Others are named by their os-release NAME.
_RPM_ECOSYSTEMS = {
    "rhel": ("Red Hat", False),
    "almalinux": ("AlmaLinux", True),
    "rocky": ("Rocky Linux", True),
    "fedora": ("Fedora", True),
    "amzn": ("Amazon Linux", True),
    "ol": ("Oracle Linux", True),
    "centos": ("CentOS", True),
    "mageia": ("Mageia", True),
    "opensuse-tumbleweed": ("openSUSE:Tumbleweed", False),
    "opensuse-leap": ("openSUSE:Leap", True),
    "sles": ("SUSE", False),
}


def _rpm_ecosystem(values: dict[str, str]) -> str:
    name, with_release = _RPM_ECOSYSTEMS.get(values.get("ID", ""), (values.get("NAME", ""), False))
    release = values.get("VERSION_ID", "")
    if name.startswith("openSUSE:Leap") and release:
        return f"{name} {release}"
    if with_release and release:
        return f"{name}:{release.split('.')[0]}"
    return name or "RPM"


def _go_version(go_version: str) -> str | None:
    """`go1.21.5` -> `1.21.5`, `go1.21` -> `1.21.0`, `go1.22rc1` -> `1.22.0-rc.1` (how OSV
    writes the Go toolchain's versions); None for a development build."""
    match = re.fullmatch(r"go(\d+)\.(\d+)(?:\.(\d+))?(?:(rc|beta)(\d+))?", go_version)
    if match is None:
        return None
    major, minor, patch, kind, number = match.groups()
    version = f"{major}.{minor}.{patch or 0}"
    return f"{version}-{kind}.{number}" if kind else version


def _go(build: GoBuild) -> list[Package]:
    found = []
    toolchain = _go_version(build.go_version)
    if toolchain is not None:
        found.append(Package("stdlib", "stdlib", toolchain, "Go"))
    modules = [build.main_module] if build.main_module else []
    for path, version in modules + list(build.dependencies):
        if version and version != "(devel)":
            found.append(Package(path, path, version, "Go"))
    return found


def _maybe_program(member: tarfile.TarInfo) -> bool:
    return (
        member.isfile() and bool(member.mode & 0o111) and 64 < member.size <= MAX_EXECUTABLE_BYTES
    )


def _paragraphs(text: str) -> Iterable[dict[str, str]]:
    fields: dict[str, str] = {}
    last = ""
    for line in text.splitlines():
        if not line.strip():
            if fields:
                yield fields
            fields, last = {}, ""
        elif line[0] in " \t":
            if last:
                fields[last] += "\n" + line.strip()
        else:
            key, _, value = line.partition(":")
            last = key.strip()
            fields[last] = value.strip()
    if fields:
        yield fields


def _dpkg(text: str, ecosystems: dict[str, str]) -> list[Package]:
    found = []
    for fields in _paragraphs(text):
        if fields.get("Status", "").split()[-1:] != ["installed"]:
            continue
        name, version = fields.get("Package"), fields.get("Version")
        if not name or not version:
            continue
        source = fields.get("Source", name).split(" ")[0]
        found.append(Package(name, source, version, ecosystems["debian"]))
    return found


def _npm(data: bytes) -> list[Package]:
    try:
        document = json.loads(data)
    except ValueError:
        return []
    if not isinstance(document, dict):
        return []
    name, version = document.get("name"), document.get("version")
    if not isinstance(name, str) or not isinstance(version, str):
        return []
    return [Package(name, name, version, "npm")]


def _apk(text: str, ecosystems: dict[str, str]) -> list[Package]:
    found = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if len(line) > 2 and line[1] == ":":
                fields.setdefault(line[0], line[2:])
        name, version = fields.get("P"), fields.get("V")
        if name and version:
            found.append(Package(name, fields.get("o", name), version, ecosystems["alpine"]))
    return found
