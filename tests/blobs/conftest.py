"""One S3-protocol server (moto) for the whole session, and a fresh bucket for each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.s3_server import S3Server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    with S3Server() as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A new, empty bucket, emptied and deleted after the test; the server's credentials are
    in this test's environment, where the S3 blob store finds them."""
    for name, value in s3_server.environment().items():
        monkeypatch.setenv(name, value)
    # A developer's own profile must not take the place of the test server's keys.
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    bucket = s3_server.create_bucket()
    yield bucket
    s3_server.delete_bucket(bucket)
