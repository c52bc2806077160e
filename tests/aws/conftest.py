"""boto3 clients for the real server started by the session fixture."""

from __future__ import annotations

import contextlib
import random
import string
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import ACCOUNT_ID, REGION, EcrdServer

__all__ = ["ACCOUNT_ID", "REGION", "ecr_client", "unvalidated_client"]


def ecr_client(
    server: EcrdServer, region: str = REGION, service: str = "ecr", validate: bool = True
) -> Any:
    """A boto3 client for `service` pointed at `server`, with no retries to hide errors.

    `validate=False` sends whatever it is given, so the server's own checks are reached.
    """
    return server.ecr(service, region_name=region, parameter_validation=validate)


def unvalidated_client(server: EcrdServer) -> Any:
    return ecr_client(server, validate=False)


@pytest.fixture
def ecr(server: EcrdServer) -> Any:
    return ecr_client(server)


@pytest.fixture
def region() -> str:
    """A region of the test's own: a registry nothing else has put settings or rules in."""
    return "tt-" + "".join(random.choices(string.ascii_lowercase, k=10)) + "-1"


@pytest.fixture
def new_repository(ecr: Any) -> Iterator[str]:
    """A freshly created repository's name; deleted (with force) afterwards."""
    name = f"api/{uuid.uuid4().hex[:12]}"
    ecr.create_repository(repositoryName=name)
    yield name
    with contextlib.suppress(ecr.exceptions.RepositoryNotFoundException):
        ecr.delete_repository(repositoryName=name, force=True)
