"""The values of a Berkeley DB hash database, read from its bytes: what rpm's older package
database (`var/lib/rpm/Packages`: RHEL and CentOS 7 and 8, Amazon Linux 2) holds, one rpm
header per value.

A hash database is a file of equal pages. Page 0 is the metadata page (the hash magic
0x061561 at byte 12, the page size at 20, the last page number at 32, the page type 8 at 25).
Every page starts with a 26-byte header: page number (8), previous (12) and next page (16),
its number of entries (20), the bytes used on it (22, `hf_offset`), its type (25). A hash page
(type 13, or 2 before Berkeley DB 4.6) has, after its header, an index of 2-byte offsets to
its items, keys and values alternating; a value held elsewhere is an off-page item (type 3:
a 4-byte page number at 4 and the total length at 8), whose bytes are the data of a chain of
overflow pages (type 7), each holding `hf_offset` bytes after its header; a small value is
kept on the page (type 1, its bytes after the type byte). Both byte orders are read (the magic
tells which); nothing is written.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

_HASH_MAGIC = 0x061561
_META_PAGE, _HASH_PAGE, _OLD_HASH_PAGE, _OVERFLOW_PAGE = 8, 13, 2, 7
_KEY_DATA_ITEM, _OFF_PAGE_ITEM = 1, 3
_PAGE_HEADER = 26
_PAGE_SIZES = frozenset(2**n for n in range(9, 17))  # 512 B to 64 KiB
# A value longer than this is not an rpm header (rpm refuses headers over 256 MiB).
_MAX_VALUE_BYTES = 256 * 1024 * 1024


class NotHashDatabase(ValueError):
    pass


def hash_values(data: bytes) -> Iterator[bytes]:
    """Every off-page value of the hash database `data`, page by page. NotHashDatabase when
    the bytes are not one; a value whose chain is broken (a truncated copy) is skipped."""
    if len(data) < 512:
        raise NotHashDatabase("too short for a metadata page")
    for order in ("<", ">"):
        if struct.unpack_from(order + "I", data, 12)[0] == _HASH_MAGIC:
            break
    else:
        raise NotHashDatabase("no hash database magic")
    (page_size,) = struct.unpack_from(order + "I", data, 20)
    (last_page,) = struct.unpack_from(order + "I", data, 32)
    if page_size not in _PAGE_SIZES or data[25] != _META_PAGE:
        raise NotHashDatabase("not a hash metadata page")
    pages = min(last_page + 1, len(data) // page_size)
    for number in range(1, pages):
        page = data[number * page_size : (number + 1) * page_size]
        if page[25] not in (_HASH_PAGE, _OLD_HASH_PAGE):
            continue
        (entries,) = struct.unpack_from(order + "H", page, 20)
        index_end = _PAGE_HEADER + 2 * entries
        if index_end > page_size:
            continue
        offsets = struct.unpack_from(f"{order}{entries}H", page, _PAGE_HEADER)
        # Keys at even positions, values at odd ones; items are packed from the page's end
        # down, so an item ends where the one before it in the index begins.
        for position in range(1, entries, 2):
            offset, end = offsets[position], offsets[position - 1]
            if not _PAGE_HEADER <= offset < end <= page_size:
                continue
            if page[offset] == _KEY_DATA_ITEM:
                yield page[offset + 1 : end]
            elif page[offset] == _OFF_PAGE_ITEM and offset + 12 <= end:
                first, length = struct.unpack_from(order + "II", page, offset + 4)
                value = _overflow_chain(data, order, page_size, pages, first, length)
                if value is not None:
                    yield value


def _overflow_chain(
    data: bytes, order: str, page_size: int, pages: int, first: int, length: int
) -> bytes | None:
    """The `length` bytes held by the chain of overflow pages from `first`; None when the
    chain leaves the file, loops, or holds another length."""
    if length > _MAX_VALUE_BYTES:
        return None
    pieces: list[bytes] = []
    held = 0
    number = first
    seen: set[int] = set()
    while number != 0:
        if number >= pages or number in seen:
            return None
        seen.add(number)
        start = number * page_size
        if data[start + 25] != _OVERFLOW_PAGE:
            return None
        (next_page,) = struct.unpack_from(order + "I", data, start + 16)
        (used,) = struct.unpack_from(order + "H", data, start + 22)
        if _PAGE_HEADER + used > page_size:
            return None
        pieces.append(data[start + _PAGE_HEADER : start + _PAGE_HEADER + used])
        held += used
        if held > length:
            return None
        number = next_page
    return b"".join(pieces) if held == length else None
