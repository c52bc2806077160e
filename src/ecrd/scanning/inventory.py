"""What an image has installed, read from its layers as a container runtime would stack them
(later layers win; `.wh.` whiteouts delete, `.wh..wh..opq` empties a directory).

Only the files that name installed packages are kept from each layer, each at most
MAX_FILE_BYTES: the dpkg status file (Debian, Ubuntu), the apk database (Alpine), Python
`*.dist-info/METADATA`, npm's `node_modules/<name>/package.json`, and `etc/os-release`
(which release the OS packages belong to).
A layer is read as a stream of its tar entries (gzip or plain), never whole in memory.
"""

from __future__ import annotations

import json
import posixpath
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from email.parser import HeaderParser
from typing import IO

MAX_FILE_BYTES = 8 * 1024 * 1024
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
        path in (DPKG_STATUS, APK_INSTALLED, *OS_RELEASE)
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
    """The wanted files of the layers read so far, by path."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def apply_layer(self, stream: IO[bytes]) -> None:
        """Stack one layer (a tar stream, gzip or not) on what is there."""
        with tarfile.open(fileobj=stream, mode="r|*") as layer:
            for member in layer:
                path = posixpath.normpath(member.name.lstrip("./")).lstrip("/")
                folder, base = posixpath.split(path)
                if base == ".wh..wh..opq":
                    prefix = f"{folder}/" if folder else ""
                    for known in [p for p in self.files if p.startswith(prefix)]:
                        del self.files[known]
                    continue
                if base.startswith(".wh."):
                    gone = posixpath.join(folder, base[len(".wh.") :])
                    for known in [p for p in self.files if p == gone or p.startswith(gone + "/")]:
                        del self.files[known]
                    continue
                if not _wanted(path):
                    continue
                if not member.isfile() or member.size > MAX_FILE_BYTES:
                    self.files.pop(path, None)
                    continue
                extracted = layer.extractfile(member)
                if extracted is not None:
                    self.files[path] = extracted.read(MAX_FILE_BYTES)

    def packages(self) -> list[Package]:
        os_ecosystem = self._os_ecosystem()
        found: list[Package] = []
        if DPKG_STATUS in self.files:
            found += _dpkg(self.files[DPKG_STATUS].decode("utf-8", "replace"), os_ecosystem)
        if APK_INSTALLED in self.files:
            found += _apk(self.files[APK_INSTALLED].decode("utf-8", "replace"), os_ecosystem)
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
        ecosystems = {"debian": "Debian", "alpine": "Alpine"}
        if values.get("ID") == "debian":
            ecosystems["debian"] = f"Debian:{release.split('.')[0]}" if release else "Debian"
        if values.get("ID") == "ubuntu":
            ecosystems["debian"] = f"Ubuntu:{release}" if release else "Ubuntu"
        if values.get("ID") == "alpine":
            minor = ".".join(release.split(".")[:2])
            ecosystems["alpine"] = f"Alpine:v{minor}" if minor else "Alpine"
        return ecosystems


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
