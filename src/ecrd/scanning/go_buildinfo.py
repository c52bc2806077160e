"""The build information Go (1.18 and later) writes into every executable it links: the Go
version and the modules the program was built from (`go version -m` prints the same).

It is a `.go.buildinfo` blob: the 14-byte magic `\\xff Go buildinf:`, a pointer size, a flags
byte (bit 2: the strings follow inline), 16 bytes ecrd does not need, then two strings, each a
uvarint length and its bytes: the Go version (`go1.21.5`) and the module information, framed
by two 16-byte sentinels, a line per entry:

    path  <main package path>
    mod   <main module path> <version> <sum>
    dep   <module path> <version> <sum>
    =>    <replacement path> <version> <sum>      (replaces the dep line above it)
    build <setting>=<value>

Executables are found by their ELF magic and searched as they stream past, a chunk at a time,
so a large binary is never held whole. Executables of Go before 1.18 keep the strings behind
pointers into the data segment instead; they are not read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO

ELF_MAGIC = b"\x7fELF"
MAGIC = b"\xff Go buildinf:"
_HEADER_BYTES = 32
_FLAG_INLINE = 0x2
_CHUNK = 1024 * 1024
# More than any real program's module list (thousands of modules take a few hundred KiB).
MAX_INFO_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class GoBuild:
    go_version: str  # "go1.21.5"
    main_module: tuple[str, str] | None  # (path, version) unless built from a checkout
    dependencies: tuple[tuple[str, str], ...]


def _uvarint(data: bytes, position: int) -> tuple[int, int] | None:
    value = shift = 0
    while position < len(data) and shift < 64:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7
    return None


def _string(data: bytes, position: int) -> tuple[bytes, int] | None:
    length = _uvarint(data, position)
    if length is None or length[0] > MAX_INFO_BYTES or length[1] + length[0] > len(data):
        return None
    start = length[1]
    return data[start : start + length[0]], start + length[0]


def parse_blob(data: bytes) -> GoBuild | None:
    """The build information in `data`, which starts at the magic; None when it is not Go 1.18+
    build information."""
    if not data.startswith(MAGIC) or len(data) < _HEADER_BYTES:
        return None
    if not data[len(MAGIC) + 1] & _FLAG_INLINE:
        return None
    version = _string(data, _HEADER_BYTES)
    if version is None:
        return None
    info = _string(data, version[1])
    if info is None:
        return None
    text = info[0]
    # The module information is framed by 16-byte sentinels (newline before the closing one).
    if len(text) >= 33 and text[-17:-16] == b"\n":
        text = text[16:-16]
    go_version = version[0].decode("utf-8", "replace").split(" ")[0]
    if not go_version.startswith("go"):
        return None
    return _modules(go_version, text.decode("utf-8", "replace"))


def _modules(go_version: str, text: str) -> GoBuild:
    main: tuple[str, str] | None = None
    dependencies: list[tuple[str, str]] = []
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) < 3:
            continue
        kind, path, version = fields[0], fields[1], fields[2]
        if kind == "mod" and version and version != "(devel)":
            main = (path, version)
        elif kind == "dep":
            dependencies.append((path, version))
        elif kind == "=>" and dependencies:
            dependencies[-1] = (path, version or dependencies[-1][1])
    return GoBuild(go_version, main, tuple(dependencies))


def read_executable(stream: IO[bytes]) -> GoBuild | None:
    """Search an executable's bytes (read from `stream` as far as needed) for Go build
    information; None for anything that is not an ELF file built by Go 1.18+."""
    if stream.read(len(ELF_MAGIC)) != ELF_MAGIC:
        return None
    data = b""
    while chunk := stream.read(_CHUNK):
        # Keep the magic's length less one byte: a magic split across two chunks is found.
        data = data[-(len(MAGIC) - 1) :] + chunk
        start = 0
        while (found := data.find(MAGIC, start)) >= 0:
            wanted = found + _HEADER_BYTES + MAX_INFO_BYTES
            if len(data) < wanted:
                data += stream.read(wanted - len(data))
            build = parse_blob(data[found:wanted])
            if build is not None:
                return build
            start = found + 1
    return None
