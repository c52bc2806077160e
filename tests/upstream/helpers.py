"""Shared pieces of the upstream client's tests: running a coroutine, credential sources."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from ecrd.upstream import BasicCredentials, CredentialSource

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
ACCEPT = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST)

T = TypeVar("T")


def run(work: Coroutine[Any, Any, T]) -> T:
    """Run `work` on an event loop of its own (each test's clients live on it)."""
    return asyncio.run(work)


class StaticCredentials:
    """A CredentialSource giving the same credentials (or None) and counting the calls."""

    def __init__(self, username: str | None, password: str = "") -> None:
        self.credentials = None if username is None else BasicCredentials(username, password)
        self.calls = 0

    async def __call__(self) -> BasicCredentials | None:
        self.calls += 1
        return self.credentials


def source(username: str, password: str) -> CredentialSource:
    return StaticCredentials(username, password)
