"""Repository names and tags as the OCI Distribution Spec defines them."""

from __future__ import annotations

import re

from ecrd.errors import NameInvalid, TagInvalid

# Path components separated by "/", each lowercase alphanumerics joined by ".", "_", "__",
# or any number of "-" (the spec's <name> grammar). ECR caps names at 256 characters.
_NAME_PATTERN = re.compile(
    r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$"
)
_TAG_PATTERN = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")
MAX_NAME_LENGTH = 256


def check_repository_name(name: str) -> str:
    """Return `name` unchanged, or raise NameInvalid when it breaks the spec's grammar."""
    if len(name) > MAX_NAME_LENGTH or _NAME_PATTERN.match(name) is None:
        raise NameInvalid(f"invalid repository name {name[:300]!r}")
    return name


def check_tag(tag: str) -> str:
    """Return `tag` unchanged, or raise TagInvalid when it breaks the spec's grammar."""
    if _TAG_PATTERN.match(tag) is None:
        raise TagInvalid(f"invalid tag {tag[:200]!r}")
    return tag
