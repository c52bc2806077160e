"""One registry, two doors: what skopeo pushes over OCI the ECR API sees, and the other way."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.aws.conftest import ecr_client
from tests.conftest import EcrdServer
from tests.integration.conftest import Skopeo
from tests.integration.helpers import (
    MANIFEST_ACCEPT,
    OCI_INDEX,
    OCI_MANIFEST,
    layout_blob,
    layout_blobs,
    layout_tops,
    manifest_digest,
    sha256_digest,
)
from tests.oci_layouts import OCI_CONFIG, OCI_LAYER, layer_tar, multi_arch_image, single_image


@pytest.fixture
def ecr(server: EcrdServer) -> Any:
    return ecr_client(server)


def upload_layer(ecr: Any, repository: str, data: bytes) -> str:
    """Push `data` with the ECR layer operations, in parts of the size the server asks for."""
    upload = ecr.initiate_layer_upload(repositoryName=repository)
    part_size = upload["partSize"]
    for first in range(0, len(data), part_size):
        part = data[first : first + part_size]
        answer = ecr.upload_layer_part(
            repositoryName=repository,
            uploadId=upload["uploadId"],
            partFirstByte=first,
            partLastByte=first + len(part) - 1,
            layerPartBlob=part,
        )
        assert answer["lastByteReceived"] == first + len(part) - 1
    digest = sha256_digest(data)
    completed = ecr.complete_layer_upload(
        repositoryName=repository, uploadId=upload["uploadId"], layerDigests=[digest]
    )
    assert completed["layerDigest"] == digest
    return digest


def test_skopeo_push_is_described_and_served_by_the_api(
    skopeo: Skopeo, ecr: Any, repository_name: str, tmp_path: Path
) -> None:
    # given an image pushed with skopeo under the tag v1
    source = tmp_path / "source"
    pushed = single_image(source, "v1", seed="cross-describe")
    skopeo.push(source, "v1", repository_name, "v1")
    manifest_bytes = layout_blob(source, pushed.digest)
    manifest = json.loads(manifest_bytes)
    # when the API describes the repository's images
    (detail,) = ecr.describe_images(repositoryName=repository_name)["imageDetails"]
    # then it shows the image under its digest and tag, as the type it was pushed as
    assert detail["imageDigest"] == pushed.digest
    assert detail["imageTags"] == ["v1"]
    assert detail["imageManifestMediaType"] == OCI_MANIFEST
    # and its size is that of its config and layers
    expected_size = manifest["config"]["size"] + sum(layer["size"] for layer in manifest["layers"])
    assert detail["imageSizeInBytes"] == expected_size
    # and BatchGetImage returns the manifest exactly as the data plane serves it
    got = ecr.batch_get_image(repositoryName=repository_name, imageIds=[{"imageTag": "v1"}])
    assert got["failures"] == []
    (image,) = got["images"]
    assert image["imageId"] == {"imageDigest": pushed.digest, "imageTag": "v1"}
    assert image["imageManifestMediaType"] == OCI_MANIFEST
    served = skopeo.inspect_raw(repository_name, "v1").stdout
    assert image["imageManifest"].encode() == served == manifest_bytes


def test_api_push_is_pulled_by_skopeo(
    skopeo: Skopeo, ecr: Any, repository_name: str, tmp_path: Path
) -> None:
    # given a layer and a config uploaded with the layer operations
    ecr.create_repository(repositoryName=repository_name)
    layer = layer_tar("cross-api-push", 4096)
    layer_digest = upload_layer(ecr, repository_name, layer)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {
                "type": "layers",
                "diff_ids": [sha256_digest(gzip.decompress(layer))],
            },
        }
    ).encode()
    config_digest = upload_layer(ecr, repository_name, config)
    # and an OCI manifest naming them, put with a tag
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": layer_digest, "size": len(layer)}],
        }
    )
    put = ecr.put_image(
        repositoryName=repository_name,
        imageManifest=manifest,
        imageManifestMediaType=OCI_MANIFEST,
        imageTag="v1",
    )
    assert put["image"]["imageId"] == {
        "imageDigest": sha256_digest(manifest.encode()),
        "imageTag": "v1",
    }
    # when skopeo pulls the tag into an empty layout
    copy = tmp_path / "copy"
    skopeo.pull(repository_name, "v1", copy, "v1")
    # then every blob it fetched matches its digest
    blobs = layout_blobs(copy)
    for digest, data in blobs.items():
        assert sha256_digest(data) == digest
    # and the manifest, config and layer are the very bytes that were uploaded
    assert layout_tops(copy)["v1"]["digest"] == sha256_digest(manifest.encode())
    assert blobs[sha256_digest(manifest.encode())] == manifest.encode()
    assert blobs[config_digest] == config
    assert blobs[layer_digest] == layer


def test_batch_delete_image_removes_the_tag_from_the_data_plane(
    skopeo: Skopeo, ecr: Any, client: httpx.Client, repository_name: str, tmp_path: Path
) -> None:
    # given an image pushed with skopeo and served under its tag
    source = tmp_path / "source"
    pushed = single_image(source, "v1", seed="cross-delete")
    skopeo.push(source, "v1", repository_name, "v1")
    assert manifest_digest(client, repository_name, "v1") == pushed.digest
    # when the API deletes it by tag
    deleted = ecr.batch_delete_image(repositoryName=repository_name, imageIds=[{"imageTag": "v1"}])
    assert deleted["imageIds"] == [{"imageDigest": pushed.digest, "imageTag": "v1"}]
    # then the data plane no longer knows the tag nor the digest
    by_tag = client.get(f"/v2/{repository_name}/manifests/v1", headers={"Accept": MANIFEST_ACCEPT})
    assert by_tag.status_code == 404
    assert by_tag.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    by_digest = client.get(
        f"/v2/{repository_name}/manifests/{pushed.digest}", headers={"Accept": MANIFEST_ACCEPT}
    )
    assert by_digest.status_code == 404


def test_index_children_are_protected_until_the_index_is_deleted(
    skopeo: Skopeo, ecr: Any, repository_name: str, tmp_path: Path
) -> None:
    # given a two-platform index pushed with skopeo --all
    source = tmp_path / "source"
    index = multi_arch_image(source, "v1", seed="cross-index")
    skopeo.push(source, "v1", repository_name, "v1", "--all")
    children = [c["digest"] for c in json.loads(layout_blob(source, index.digest))["manifests"]]
    # when the API deletes one platform's manifest by digest
    refused = ecr.batch_delete_image(
        repositoryName=repository_name, imageIds=[{"imageDigest": children[0]}]
    )
    # then it refuses, because the index references it
    assert refused["imageIds"] == []
    (failure,) = refused["failures"]
    assert failure["imageId"] == {"imageDigest": children[0]}
    assert failure["failureCode"] == "ImageReferencedByManifestList"
    assert skopeo.inspect_raw(repository_name, children[0]).stdout == layout_blob(
        source, children[0]
    )
    # when the index itself is deleted by its tag
    deleted = ecr.batch_delete_image(repositoryName=repository_name, imageIds=[{"imageTag": "v1"}])
    # then that succeeds, and the platform manifests remain as untagged images
    assert deleted["failures"] == []
    assert deleted["imageIds"] == [{"imageDigest": index.digest, "imageTag": "v1"}]
    untagged = ecr.describe_images(repositoryName=repository_name, filter={"tagStatus": "UNTAGGED"})
    assert sorted(d["imageDigest"] for d in untagged["imageDetails"]) == sorted(children)
    for detail in untagged["imageDetails"]:
        assert detail["imageManifestMediaType"] == OCI_MANIFEST
        assert "imageTags" not in detail
    # and the child can now be deleted
    now_deleted = ecr.batch_delete_image(
        repositoryName=repository_name, imageIds=[{"imageDigest": children[0]}]
    )
    assert now_deleted["failures"] == []
    assert now_deleted["imageIds"] == [{"imageDigest": children[0]}]


def test_index_pushed_by_skopeo_is_described_as_an_index(
    skopeo: Skopeo, ecr: Any, repository_name: str, tmp_path: Path
) -> None:
    # given a two-platform index pushed with skopeo --all
    source = tmp_path / "source"
    index = multi_arch_image(source, "v1", seed="cross-index-describe")
    skopeo.push(source, "v1", repository_name, "v1", "--all")
    # when the API describes the tag
    (detail,) = ecr.describe_images(repositoryName=repository_name, imageIds=[{"imageTag": "v1"}])[
        "imageDetails"
    ]
    # then it is the index, under its digest and media type
    assert detail["imageDigest"] == index.digest
    assert detail["imageManifestMediaType"] == OCI_INDEX
    assert detail["imageTags"] == ["v1"]


def test_download_url_serves_a_layer_skopeo_pushed(
    skopeo: Skopeo, ecr: Any, repository_name: str, tmp_path: Path
) -> None:
    # given an image pushed with skopeo
    source = tmp_path / "source"
    pushed = single_image(source, "v1", seed="cross-download")
    skopeo.push(source, "v1", repository_name, "v1")
    layer_digest = json.loads(layout_blob(source, pushed.digest))["layers"][0]["digest"]
    # when the API is asked where to download its layer
    answer = ecr.get_download_url_for_layer(
        repositoryName=repository_name, layerDigest=layer_digest
    )
    # then the URL serves bytes whose sha256 is the layer's digest
    assert answer["layerDigest"] == layer_digest
    response = httpx.get(answer["downloadUrl"], follow_redirects=True, timeout=30)
    assert response.status_code == 200
    assert f"sha256:{hashlib.sha256(response.content).hexdigest()}" == layer_digest
    assert response.content == layout_blob(source, layer_digest)


def test_immutable_repository_refuses_a_skopeo_push_over_a_tag(
    skopeo: Skopeo, ecr: Any, client: httpx.Client, repository_name: str, tmp_path: Path
) -> None:
    # given an immutable repository holding an image tagged v1
    ecr.create_repository(repositoryName=repository_name, imageTagMutability="IMMUTABLE")
    first_source, second_source = tmp_path / "first", tmp_path / "second"
    first = single_image(first_source, "v1", seed="cross-immutable-1")
    single_image(second_source, "v1", seed="cross-immutable-2")
    skopeo.push(first_source, "v1", repository_name, "v1")
    # when skopeo pushes different content under the same tag
    result = skopeo(
        "copy", "--dest-tls-verify=false", "--preserve-digests",
        f"oci:{second_source}:v1", skopeo.ref(repository_name, "v1"),
        check=False,
    )  # fmt: skip
    # then the push fails and the tag still names the first image
    assert result.returncode != 0
    assert manifest_digest(client, repository_name, "v1") == first.digest
    described = ecr.describe_images(repositoryName=repository_name, imageIds=[{"imageTag": "v1"}])
    assert described["imageDetails"][0]["imageDigest"] == first.digest
