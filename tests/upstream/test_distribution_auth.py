"""The upstream client against CNCF Distribution with htpasswd (Basic) auth: manifests by tag
and digest, HEAD, blobs streamed byte for byte, and each failure told apart."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ecrd.upstream import (
    UpstreamClient,
    UpstreamInvalid,
    UpstreamNotFound,
    UpstreamUnauthorized,
    UpstreamUnavailable,
)
from ecrd.upstream.client import BLOB_CHUNK_BYTES
from tests.distribution_registry import DistributionRegistry, require_distribution, skopeo_policy
from tests.oci_layouts import Layout
from tests.upstream.helpers import ACCEPT, OCI_INDEX, OCI_MANIFEST, StaticCredentials, run

# Distribution's own registry process: nothing of ecrd's store is involved.
pytestmark = pytest.mark.metadata_independent

USER, PASSWORD = "puller", "s3cret"
# Bigger than a chunk, so that streaming shows in the pieces.
LAYER_BYTES = 3 * BLOB_CHUNK_BYTES


@dataclass(frozen=True)
class Pushed:
    registry: DistributionRegistry
    layout: Path
    manifest: bytes
    index: bytes

    def blob(self, digest: str) -> bytes:
        return (self.layout / "blobs" / "sha256" / digest.split(":")[1]).read_bytes()


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pushed]:
    """One Distribution for the module, asking for Basic auth, holding library/app:1 (an
    image with a 3 MiB layer) and library/multi:1 (an index of two)."""
    require_distribution()
    folder = tmp_path_factory.mktemp("distribution-auth")
    layout = Layout(folder / "layout")
    image = layout.add_image(layer_bytes=LAYER_BYTES, seed="upstream-auth")
    layout.tag(image, "image")
    children = {arch: layout.add_image(arch, seed="upstream-multi") for arch in ("amd64", "arm64")}
    index = layout.add_index(children)
    layout.tag(index, "multi")
    registry = DistributionRegistry(folder / "registry", {USER: PASSWORD})
    registry.start()
    try:
        policy = skopeo_policy(folder)
        registry.push(policy, layout.root, "image", "library/app", "1")
        registry.push(policy, layout.root, "multi", "library/multi", "1")
        blobs = layout.root / "blobs" / "sha256"
        yield Pushed(
            registry,
            layout.root,
            (blobs / image.digest.split(":")[1]).read_bytes(),
            (blobs / index.digest.split(":")[1]).read_bytes(),
        )
    finally:
        registry.stop()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_manifest_by_tag_and_by_digest_is_the_pushed_bytes(pushed: Pushed) -> None:
    credentials = StaticCredentials(USER, PASSWORD)

    async def work() -> None:
        client = UpstreamClient(pushed.registry.url, credentials)
        try:
            by_tag = await client.manifest("library/app", "1", ACCEPT)
            by_digest = await client.manifest("library/app", sha256(pushed.manifest), ACCEPT)
            index = await client.manifest("library/multi", "1", ACCEPT)
        finally:
            await client.aclose()
        # then the bytes are those pushed, named by their sha256, of the type pushed
        assert by_tag.body == pushed.manifest
        assert by_tag.digest == sha256(pushed.manifest)
        assert by_tag.media_type == OCI_MANIFEST
        assert by_digest == by_tag
        assert index.body == pushed.index
        assert index.media_type == OCI_INDEX

    run(work())
    # Credentials asked for after the first challenge, once per request from then on.
    assert credentials.calls == 3


def test_head_tells_digest_type_and_size_without_the_body(pushed: Pushed) -> None:
    gets_before = pushed.registry.requests_for("/v2/library/app/manifests/1")

    async def work() -> None:
        client = UpstreamClient(pushed.registry.url, StaticCredentials(USER, PASSWORD))
        try:
            found = await client.manifest_digest("library/app", "1", ACCEPT)
        finally:
            await client.aclose()
        assert found.digest == sha256(pushed.manifest)
        assert found.media_type == OCI_MANIFEST
        assert found.size == len(pushed.manifest)

    run(work())
    # HEAD only: no GET of the manifest was made for it
    assert pushed.registry.requests_for("/v2/library/app/manifests/1") == gets_before
    assert pushed.registry.requests_for("/v2/library/app/manifests/1", method="HEAD") >= 1


def test_blob_streams_byte_identical_in_pieces(pushed: Pushed) -> None:
    layer = json.loads(pushed.manifest)["layers"][0]
    expected = pushed.blob(layer["digest"])
    assert len(expected) > BLOB_CHUNK_BYTES

    async def work() -> list[bytes]:
        client = UpstreamClient(pushed.registry.url, StaticCredentials(USER, PASSWORD))
        try:
            async with client.blob("library/app", layer["digest"]) as blob:
                assert blob.size == len(expected)
                return [chunk async for chunk in blob.chunks()]
        finally:
            await client.aclose()

    chunks = run(work())
    assert b"".join(chunks) == expected
    # it came in pieces no larger than a chunk, not as one buffered body
    assert len(chunks) > 1
    assert max(len(chunk) for chunk in chunks) <= BLOB_CHUNK_BYTES


def test_wrong_password_is_unauthorized(pushed: Pushed) -> None:
    async def work() -> None:
        client = UpstreamClient(pushed.registry.url, StaticCredentials(USER, "wrong"))
        try:
            with pytest.raises(UpstreamUnauthorized):
                await client.check()
            with pytest.raises(UpstreamUnauthorized):
                await client.check("library/app")
            with pytest.raises(UpstreamUnauthorized):
                await client.manifest("library/app", "1", ACCEPT)
            with pytest.raises(UpstreamUnauthorized):
                await client.manifest_digest("library/app", "1", ACCEPT)
        finally:
            await client.aclose()

    run(work())


def test_no_credentials_is_unauthorized(pushed: Pushed) -> None:
    async def work() -> None:
        for credentials in (None, StaticCredentials(None)):
            client = UpstreamClient(pushed.registry.url, credentials)
            try:
                with pytest.raises(UpstreamUnauthorized, match="none are configured"):
                    await client.check()
                with pytest.raises(UpstreamUnauthorized):
                    await client.manifest("library/app", "1", ACCEPT)
            finally:
                await client.aclose()

    run(work())


def test_check_passes_with_the_right_credentials(pushed: Pushed) -> None:
    async def work() -> None:
        client = UpstreamClient(pushed.registry.url, StaticCredentials(USER, PASSWORD))
        try:
            await client.check()
            await client.check("library/app")
        finally:
            await client.aclose()

    run(work())


def test_unknown_tag_repository_and_blob_are_not_found(pushed: Pushed) -> None:
    async def work() -> None:
        client = UpstreamClient(pushed.registry.url, StaticCredentials(USER, PASSWORD))
        try:
            with pytest.raises(UpstreamNotFound, match="MANIFEST_UNKNOWN"):
                await client.manifest("library/app", "no-such-tag", ACCEPT)
            with pytest.raises(UpstreamNotFound):
                await client.manifest_digest("library/app", "no-such-tag", ACCEPT)
            with pytest.raises(UpstreamNotFound):
                await client.manifest("library/nothing-here", "1", ACCEPT)
            with pytest.raises(UpstreamNotFound, match="BLOB_UNKNOWN"):
                async with client.blob("library/app", sha256(b"never pushed")):
                    pass
        finally:
            await client.aclose()

    run(work())


def test_a_manifest_over_the_bound_is_invalid(pushed: Pushed) -> None:
    async def work() -> None:
        client = UpstreamClient(
            pushed.registry.url,
            StaticCredentials(USER, PASSWORD),
            max_manifest_bytes=len(pushed.manifest) - 1,
        )
        try:
            with pytest.raises(UpstreamInvalid, match="over the"):
                await client.manifest("library/app", "1", ACCEPT)
        finally:
            await client.aclose()

    run(work())


def test_the_registry_stopped_is_unavailable_and_back_once_restarted(pushed: Pushed) -> None:
    async def pull() -> bytes:
        client = UpstreamClient(
            pushed.registry.url, StaticCredentials(USER, PASSWORD), connect_timeout=2
        )
        try:
            return (await client.manifest("library/app", "1", ACCEPT)).body
        finally:
            await client.aclose()

    pushed.registry.stop()
    try:
        with pytest.raises(UpstreamUnavailable):
            run(pull())
    finally:
        pushed.registry.start()
    assert run(pull()) == pushed.manifest
