"""The upstream client against a started ecrd: an ECR upstream's login (GetAuthorizationToken),
the Bearer token flow (ecrd answers the Docker engine with ECR Public's Bearer challenge and its
/token endpoint), the referrers API, and a blob redirected to object storage."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from ecrd.upstream import (
    AwsCredentials,
    EcrLogin,
    UpstreamClient,
    UpstreamUnauthorized,
    UpstreamUnavailable,
)
from tests.conftest import (
    ACCOUNT_ID,
    ROOT_ACCESS_KEY_ID,
    ROOT_SECRET_ACCESS_KEY,
    EcrdServer,
    free_port,
    session_s3_server,
)
from tests.oci.helpers import (
    EMPTY_JSON,
    OCI_EMPTY,
    descriptor,
    digest_of,
    encode,
    push_blob,
    push_image,
    put_manifest,
)
from tests.upstream.helpers import ACCEPT, OCI_MANIFEST, StaticCredentials, run

ROOT = AwsCredentials(ROOT_ACCESS_KEY_ID, ROOT_SECRET_ACCESS_KEY)
UPSTREAM_HOST = f"{ACCOUNT_ID}.dkr.ecr.eu-west-1.amazonaws.com"
# What makes ecrd challenge with Bearer (oci/access.py): the Docker engine's User-Agent.
DOCKER_USER_AGENT = "docker/27.5.1 go/go1.22.12 (ecrd upstream client test)"
SIGNATURE = "application/vnd.example.signature"
LAYER = bytes(range(256)) * 9000  # 2.2 MiB, more than one chunk


@dataclass(frozen=True)
class Image:
    repository: str
    tag: str
    manifest: bytes
    digest: str
    signature_digest: str


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EcrdServer]:
    """One ecrd for the module, its blobs in a bucket of the session's S3 server with redirects
    on (in both passes), so a blob GET answers 307 to a presigned URL on another origin."""
    s3 = session_s3_server()
    instance = EcrdServer(
        tmp_path_factory.mktemp("ecrd-upstream") / "data",
        environment={
            **s3.environment(),
            "ECRD_BLOB_STORE": "s3",
            "ECRD_S3_BUCKET": s3.create_bucket(),
            "ECRD_S3_ENDPOINT_URL": s3.endpoint_url,
            "ECRD_S3_REDIRECT": "true",
        },
    )
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def image(upstream: EcrdServer) -> Image:
    """team/<unique>:1, an image with a 2.2 MiB layer and a signature referring to it."""
    repository = f"team/{uuid.uuid4().hex[:12]}"
    with upstream.http() as client:
        manifest, digest = push_image(client, repository, "1", layer=LAYER)
        push_blob(client, repository, EMPTY_JSON)
        push_blob(client, repository, b"signature")
        signature = encode({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": SIGNATURE,
            "config": descriptor(OCI_EMPTY, EMPTY_JSON),
            "layers": [descriptor("application/octet-stream", b"signature")],
            "subject": descriptor(OCI_MANIFEST, manifest),
        })  # fmt: skip
        answer = put_manifest(client, repository, digest_of(signature), signature)
        assert answer.status_code == 201, answer.text
    return Image(repository, "1", manifest, digest, digest_of(signature))


def root_login(server: EcrdServer) -> StaticCredentials:
    """The root's registry login (`AWS`, a GetAuthorizationToken password)."""
    return StaticCredentials("AWS", server.registry_password())


def access_lines(server: EcrdServer, pattern: str) -> list[str]:
    """The server's access-log lines matching `pattern` (a regular expression)."""
    return [
        line
        for line in server.log_path.read_text(errors="replace").splitlines()
        if re.search(pattern, line)
    ]


# --- an ECR upstream: GetAuthorizationToken --------------------------------------------------


def test_ecr_login_gives_basic_credentials_that_pull(upstream: EcrdServer, image: Image) -> None:
    login = EcrLogin(upstream.url, UPSTREAM_HOST, credentials=ROOT)
    # the region is the registry host's, the API the URL ecrd talks to
    assert login.region == "eu-west-1"
    assert login.endpoint_url == upstream.url
    calls_before = len(access_lines(upstream, r"GetAuthorizationToken"))

    async def work() -> None:
        first = await login()
        # ECR's token decodes to AWS:<password>; it is kept, not asked for again
        assert first.username == "AWS"
        assert await login() is first
        client = UpstreamClient(upstream.url, login)
        try:
            await client.check(image.repository)
            fetched = await client.manifest(image.repository, image.tag, ACCEPT)
        finally:
            await client.aclose()
        assert fetched.body == image.manifest
        assert fetched.digest == image.digest

    run(work())
    assert len(access_lines(upstream, r"GetAuthorizationToken")) == calls_before + 1


def test_ecr_login_signs_with_the_default_chain(
    upstream: EcrdServer, image: Image, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given AWS credentials only in the environment (no shared files to fall back on)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ROOT_ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", ROOT_SECRET_ACCESS_KEY)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/ecrd-test-aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/ecrd-test-aws-credentials")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # and a host that names no region: the one given is used
    login = EcrLogin(upstream.url, region="us-west-2")
    assert login.region == "us-west-2"

    async def work() -> bytes:
        client = UpstreamClient(upstream.url, login)
        try:
            return (await client.manifest(image.repository, image.tag, ACCEPT)).body
        finally:
            await client.aclose()

    assert run(work()) == image.manifest


def test_ecr_login_with_a_wrong_secret_is_unauthorized(upstream: EcrdServer) -> None:
    login = EcrLogin(
        upstream.url, UPSTREAM_HOST, credentials=AwsCredentials(ROOT_ACCESS_KEY_ID, "x")
    )

    async def work() -> None:
        with pytest.raises(UpstreamUnauthorized, match="InvalidSignatureException") as raised:
            await login()
        assert "x" not in raised.value.message.split(": ", 1)[0]
        client = UpstreamClient(upstream.url, login)
        try:
            with pytest.raises(UpstreamUnauthorized):
                await client.check()
        finally:
            await client.aclose()

    run(work())


def test_ecr_login_of_an_upstream_that_is_down_is_unavailable() -> None:
    login = EcrLogin(f"http://127.0.0.1:{free_port()}", UPSTREAM_HOST, credentials=ROOT)

    async def work() -> None:
        with pytest.raises(UpstreamUnavailable, match="GetAuthorizationToken"):
            await login()

    run(work())


# --- the Bearer token flow -----------------------------------------------------------------


def test_bearer_flow_fetches_one_token_per_scope_with_the_login(
    upstream: EcrdServer, image: Image
) -> None:
    password = upstream.registry_password()
    token_fetches = rf"path=/token\?\S*{re.escape(image.repository.split('/')[1])}"
    before = len(access_lines(upstream, token_fetches))

    async def work() -> None:
        client = UpstreamClient(
            upstream.url, StaticCredentials("AWS", password), user_agent=DOCKER_USER_AGENT
        )
        try:
            fetched = await client.manifest(image.repository, image.tag, ACCEPT)
            again = await client.manifest(image.repository, image.digest, ACCEPT)
            head = await client.manifest_digest(image.repository, image.tag, ACCEPT)
            await client.check(image.repository)
        finally:
            await client.aclose()
        assert fetched.body == again.body == image.manifest
        assert head.digest == image.digest

    run(work())
    # the challenge was Bearer, and one token of the repository's pull scope served every
    # request (kept for its 60 s default lifetime: ecrd's answer has no expires_in)
    lines = access_lines(upstream, token_fetches)
    assert len(lines) == before + 1
    assert "repository%3Ateam%2F" in lines[-1] and "%3Apull" in lines[-1]
    assert "status=200" in lines[-1]


def test_bearer_flow_with_a_wrong_password_or_none_is_unauthorized(
    upstream: EcrdServer, image: Image
) -> None:
    async def work() -> None:
        for credentials in (StaticCredentials("AWS", "not-a-token"), None):
            client = UpstreamClient(upstream.url, credentials, user_agent=DOCKER_USER_AGENT)
            try:
                with pytest.raises(UpstreamUnauthorized):
                    await client.manifest(image.repository, image.tag, ACCEPT)
                with pytest.raises(UpstreamUnauthorized):
                    await client.check()
            finally:
                await client.aclose()

    run(work())


def test_ecrd_challenges_the_docker_engine_with_bearer(upstream: EcrdServer) -> None:
    # What the Bearer tests rely on: the challenge they get is ECR Public's, naming /token.
    answer = httpx.get(f"{upstream.url}/v2/", headers={"User-Agent": DOCKER_USER_AGENT})
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith(f'Bearer realm="{upstream.url}/token"')


# --- referrers and blobs ------------------------------------------------------------------


def test_referrers_lists_what_ecrd_serves(upstream: EcrdServer, image: Image) -> None:
    async def work() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        client = UpstreamClient(
            upstream.url, StaticCredentials("AWS", upstream.registry_password())
        )
        try:
            listed = await client.referrers(image.repository, image.digest)
            none = await client.referrers(image.repository, image.signature_digest)
        finally:
            await client.aclose()
        return listed, none

    listed, none = run(work())
    assert [entry["digest"] for entry in listed] == [image.signature_digest]
    assert listed[0]["artifactType"] == SIGNATURE
    assert listed[0]["mediaType"] == OCI_MANIFEST
    assert none == []
    # the referrers API answered: no tag schema fallback was asked for
    assert not access_lines(upstream, rf"path=/v2/{image.repository}/manifests/sha256-")


def test_blob_redirected_to_object_storage_is_followed(upstream: EcrdServer, image: Image) -> None:
    layer = json.loads(image.manifest)["layers"][0]

    async def work() -> tuple[int | None, bytes]:
        client = UpstreamClient(
            upstream.url, StaticCredentials("AWS", upstream.registry_password())
        )
        try:
            async with client.blob(image.repository, layer["digest"]) as blob:
                return blob.size, b"".join([chunk async for chunk in blob.chunks()])
        finally:
            await client.aclose()

    size, body = run(work())
    assert body == LAYER
    assert size == len(LAYER)
    # ecrd answered with a redirect (to the presigned S3 URL), which the client followed
    assert access_lines(upstream, rf"path=/v2/{image.repository}/blobs/{layer['digest']} .*307")
