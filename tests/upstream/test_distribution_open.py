"""The upstream client against CNCF Distribution without auth (anonymous pulls), the referrers
tag schema fallback of a registry without the referrers API, and a registry that never
answers."""

from __future__ import annotations

import hashlib
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from ecrd.upstream import UpstreamClient, UpstreamUnavailable
from tests.distribution_registry import DistributionRegistry, require_distribution
from tests.upstream.helpers import ACCEPT, OCI_INDEX, OCI_MANIFEST, StaticCredentials, run

# Distribution's own registry process: nothing of ecrd's store is involved.
pytestmark = pytest.mark.metadata_independent

OCI_EMPTY = "application/vnd.oci.empty.v1+json"
SIGNATURE = "application/vnd.example.signature"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def encode(document: dict[str, object]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def descriptor(media_type: str, data: bytes, **extra: object) -> dict[str, object]:
    return {"mediaType": media_type, "digest": sha256(data), "size": len(data), **extra}


@dataclass(frozen=True)
class Pushed:
    registry: DistributionRegistry
    image: bytes
    signature: bytes
    unsigned: bytes


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pushed]:
    """One open Distribution for the module: library/app:1 (an image), a signature of it
    listed the tag schema's way (an index tagged `sha256-<hex>`, since Distribution 2.8 has no
    referrers API), and library/app:2, an image nothing refers to."""
    require_distribution()
    registry = DistributionRegistry(tmp_path_factory.mktemp("distribution-open"))
    registry.start()
    try:
        config, empty = b'{"architecture":"amd64","os":"linux"}', b"{}"
        for data in (config, empty, b"layer one", b"layer two", b"signature"):
            registry.push_blob("library/app", data)
        images = [
            encode({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": descriptor("application/vnd.oci.image.config.v1+json", config),
                "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", layer)],
            })
            for layer in (b"layer one", b"layer two")
        ]  # fmt: skip
        registry.put_manifest("library/app", "1", images[0], OCI_MANIFEST)
        registry.put_manifest("library/app", "2", images[1], OCI_MANIFEST)
        signature = encode({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": SIGNATURE,
            "config": descriptor(OCI_EMPTY, empty),
            "layers": [descriptor("application/octet-stream", b"signature")],
            "subject": descriptor(OCI_MANIFEST, images[0]),
        })  # fmt: skip
        registry.put_manifest("library/app", sha256(signature), signature, OCI_MANIFEST)
        listing = encode({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [descriptor(OCI_MANIFEST, signature, artifactType=SIGNATURE)],
        })  # fmt: skip
        fallback_tag = sha256(images[0]).replace(":", "-")
        registry.put_manifest("library/app", fallback_tag, listing, OCI_INDEX)
        yield Pushed(registry, images[0], signature, images[1])
    finally:
        registry.stop()


def test_anonymous_pulls_never_ask_for_credentials(pushed: Pushed) -> None:
    credentials = StaticCredentials("someone", "unused")

    async def work() -> None:
        client = UpstreamClient(pushed.registry.url, credentials)
        try:
            await client.check()
            await client.check("library/app")
            fetched = await client.manifest("library/app", "1", ACCEPT)
            head = await client.manifest_digest("library/app", "1", ACCEPT)
            async with client.blob("library/app", sha256(b"layer one")) as blob:
                body = b"".join([chunk async for chunk in blob.chunks()])
        finally:
            await client.aclose()
        assert fetched.body == pushed.image
        assert fetched.media_type == OCI_MANIFEST
        assert head.digest == fetched.digest == sha256(pushed.image)
        assert body == b"layer one"

    run(work())
    # no challenge came, so the source was never called
    assert credentials.calls == 0


def test_referrers_fall_back_to_the_tag_schema(pushed: Pushed) -> None:
    async def work() -> None:
        client = UpstreamClient(pushed.registry.url)
        try:
            listed = await client.referrers("library/app", sha256(pushed.image))
            none = await client.referrers("library/app", sha256(pushed.unsigned))
        finally:
            await client.aclose()
        # the index under sha256-<hex> lists the signature; an image without one lists none
        assert listed == [descriptor(OCI_MANIFEST, pushed.signature, artifactType=SIGNATURE)]
        assert none == []

    run(work())
    # Distribution 2.8 has no referrers route (a 404 only its access log shows), which is what
    # sent the client to the tag
    log = pushed.registry.log_path.read_text()
    assert f'"GET /v2/library/app/referrers/{sha256(pushed.image)} HTTP/1.1" 404' in log
    assert pushed.registry.requests_for(f"/manifests/{sha256(pushed.image).replace(':', '-')}")


def test_an_upstream_that_never_answers_is_unavailable_after_the_read_timeout() -> None:
    # given a loopback socket that accepts connections (the kernel's backlog) but never reads
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"

        async def work() -> None:
            client = UpstreamClient(url, read_timeout=0.5)
            try:
                with pytest.raises(UpstreamUnavailable, match="timed out"):
                    await client.manifest("library/app", "1", ACCEPT)
            finally:
                await client.aclose()

        started = time.monotonic()
        run(work())
    # then the client gave up after its read timeout, not a default minute
    assert time.monotonic() - started < 5
