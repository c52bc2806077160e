"""Content digests: parsing, validation and hashing.

A digest is `<algorithm>:<hex>`; ecrd accepts the two algorithms the OCI image spec registers,
sha256 and sha512, with lowercase hex of the exact length.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Protocol

from ecrd.errors import DigestInvalid

HEX_LENGTHS = {"sha256": 64, "sha512": 128}
_DIGEST_PATTERN = re.compile(r"^(sha256|sha512):([a-f0-9]+)$")


class Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def hexdigest(self) -> str: ...


@dataclass(frozen=True)
class Digest:
    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse `text`, raising DigestInvalid unless it is a well-formed sha256/sha512 digest."""
        match = _DIGEST_PATTERN.match(text)
        if match is None or len(match.group(2)) != HEX_LENGTHS[match.group(1)]:
            raise DigestInvalid(f"invalid digest {text[:200]!r}")
        return cls(match.group(1), match.group(2))

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())


def is_digest(text: str) -> bool:
    """Whether a manifest reference is meant as a digest (tags cannot hold a colon)."""
    return ":" in text


def is_valid_digest(text: str) -> bool:
    """Whether `text` is a well-formed digest ecrd accepts."""
    try:
        Digest.parse(text)
    except DigestInvalid:
        return False
    return True


def new_hasher(algorithm: str = "sha256") -> Hasher:
    return hashlib.new(algorithm)
