"""skopeo against ecrd: copies in and out of OCI layouts, multi-arch lists, tags, deletes."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.integration.conftest import Skopeo
from tests.integration.helpers import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    MANIFEST_ACCEPT,
    OCI_INDEX,
    OCI_MANIFEST,
    layout_blob,
    layout_blobs,
    layout_tops,
    manifest_digest,
    registry_catalog,
    registry_tags,
    sha256_digest,
)
from tests.oci_layouts import multi_arch_image, single_image


def test_copy_single_image_keeps_manifest_bytes_and_digest(
    skopeo: Skopeo, client: httpx.Client, repository_name: str, tmp_path: Path
) -> None:
    # given a single-platform image in an OCI layout
    source = tmp_path / "source"
    pushed = single_image(source, "v1", seed="single")
    # when skopeo copies it to the registry, keeping digests
    skopeo.push(source, "v1", repository_name, "v1")
    # then the tag resolves to the very same manifest, byte for byte
    assert manifest_digest(client, repository_name, "v1") == pushed.digest
    served = skopeo.inspect_raw(repository_name, "v1").stdout
    assert served == layout_blob(source, pushed.digest)
    # and every blob the manifest names is in the repository
    manifest = json.loads(served)
    for descriptor in [manifest["config"], *manifest["layers"]]:
        response = client.head(f"/v2/{repository_name}/blobs/{descriptor['digest']}")
        assert response.status_code == 200
        assert response.headers["Content-Length"] == str(descriptor["size"])


def test_copy_back_to_fresh_layout_is_byte_identical(
    skopeo: Skopeo, repository_name: str, tmp_path: Path
) -> None:
    # given an image pushed from an OCI layout
    source = tmp_path / "source"
    pushed = single_image(source, "v1", seed="round-trip")
    skopeo.push(source, "v1", repository_name, "v1")
    # when skopeo copies it back into an empty layout
    copy = tmp_path / "copy"
    skopeo.pull(repository_name, "v1", copy, "v1")
    # then the copy holds the same blobs with the same bytes
    assert layout_blobs(copy) == layout_blobs(source)
    # and its index names the same manifest digest, media type and size
    top = layout_tops(copy)["v1"]
    assert top["digest"] == pushed.digest
    assert top["mediaType"] == OCI_MANIFEST
    assert top["size"] == pushed.size


def test_copy_all_keeps_index_digest_and_each_platform(
    skopeo: Skopeo, client: httpx.Client, repository_name: str, tmp_path: Path
) -> None:
    # given a two-platform image index in an OCI layout
    source = tmp_path / "source"
    index = multi_arch_image(source, "v1", seed="multi")
    # when skopeo copies every platform, keeping digests
    skopeo.push(source, "v1", repository_name, "v1", "--all")
    # then the tag serves the index unchanged
    served_index = skopeo.inspect_raw(repository_name, "v1").stdout
    assert sha256_digest(served_index) == index.digest
    assert served_index == layout_blob(source, index.digest)
    assert manifest_digest(client, repository_name, "v1") == index.digest
    document = json.loads(served_index)
    assert document["mediaType"] == OCI_INDEX
    # and each platform's manifest can be pulled by its digest, unchanged
    children = document["manifests"]
    assert {child["platform"]["architecture"] for child in children} == {"amd64", "arm64"}
    for child in children:
        served = skopeo.inspect_raw(repository_name, child["digest"]).stdout
        assert sha256_digest(served) == child["digest"]
        assert len(served) == child["size"]
        assert served == layout_blob(source, child["digest"])


def test_copy_all_back_to_fresh_layout_is_byte_identical(
    skopeo: Skopeo, repository_name: str, tmp_path: Path
) -> None:
    # given a multi-platform image pushed with --all
    source = tmp_path / "source"
    index = multi_arch_image(source, "v1", seed="multi-round-trip")
    skopeo.push(source, "v1", repository_name, "v1", "--all")
    # when all of it is copied back into an empty layout
    copy = tmp_path / "copy"
    skopeo.pull(repository_name, "v1", copy, "v1", "--all")
    # then index, manifests, configs and layers are all byte-identical
    assert layout_blobs(copy) == layout_blobs(source)
    assert layout_tops(copy)["v1"]["digest"] == index.digest


def test_list_tags_names_every_pushed_tag(
    skopeo: Skopeo, client: httpx.Client, repository_name: str, tmp_path: Path
) -> None:
    # given one image pushed under three tags
    source = tmp_path / "source"
    single_image(source, "v1", seed="tags")
    for tag in ("v1", "v2", "latest"):
        skopeo.push(source, "v1", repository_name, tag)
    # when skopeo lists the repository's tags
    result = skopeo(
        "list-tags", "--tls-verify=false", f"docker://{skopeo.server.host}/{repository_name}"
    )
    listing = json.loads(result.stdout)
    # then exactly those tags come back, and the registry's own list agrees
    assert listing["Repository"] == f"{skopeo.server.host}/{repository_name}"
    assert sorted(listing["Tags"]) == ["latest", "v1", "v2"]
    assert sorted(registry_tags(client, repository_name)) == ["latest", "v1", "v2"]


def test_delete_by_digest_makes_the_manifest_unknown(
    skopeo: Skopeo, client: httpx.Client, repository_name: str, tmp_path: Path
) -> None:
    # given a pushed image
    source = tmp_path / "source"
    pushed = single_image(source, "v1", seed="delete")
    skopeo.push(source, "v1", repository_name, "v1")
    skopeo.inspect_raw(repository_name, pushed.digest)
    # when skopeo deletes it by digest
    skopeo("delete", "--tls-verify=false", skopeo.ref(repository_name, pushed.digest))
    # then neither its digest nor its tag can be inspected any more
    by_digest = skopeo.inspect_raw(repository_name, pushed.digest, check=False)
    assert by_digest.returncode != 0
    assert b"manifest unknown" in by_digest.stderr.lower()
    by_tag = skopeo.inspect_raw(repository_name, "v1", check=False)
    assert by_tag.returncode != 0
    # and the registry answers 404 for it and no longer lists the tag
    response = client.get(f"/v2/{repository_name}/manifests/{pushed.digest}")
    assert response.status_code == 404
    assert "v1" not in registry_tags(client, repository_name)


def test_nested_repository_names_work_end_to_end(
    skopeo: Skopeo, client: httpx.Client, repository_name: str, tmp_path: Path
) -> None:
    # given a repository name with several path components
    nested = f"{repository_name}/team/sub/app"
    source = tmp_path / "source"
    pushed = single_image(source, "v1", seed="nested")
    # when skopeo pushes to it, lists it and copies it back
    skopeo.push(source, "v1", nested, "v1")
    listing = json.loads(
        skopeo("list-tags", "--tls-verify=false", f"docker://{skopeo.server.host}/{nested}").stdout
    )
    copy = tmp_path / "copy"
    skopeo.pull(nested, "v1", copy, "v1")
    # then every step saw the same image under the full nested name
    assert listing["Tags"] == ["v1"]
    assert manifest_digest(client, nested, "v1") == pushed.digest
    assert layout_blobs(copy) == layout_blobs(source)
    # and the catalog names the nested repository, not a parent of it
    catalog = registry_catalog(client)
    assert nested in catalog
    assert f"{repository_name}/team" not in catalog


def test_copy_between_repositories_keeps_digest(
    skopeo: Skopeo, client: httpx.Client, repository_name: str, tmp_path: Path
) -> None:
    # given an image already in one repository of the registry
    source = tmp_path / "source"
    pushed = single_image(source, "v1", seed="cross-repository")
    skopeo.push(source, "v1", repository_name, "v1")
    # when skopeo copies it registry-to-registry into another repository
    other = f"{repository_name}-copy"
    skopeo(
        "copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--preserve-digests",
        skopeo.ref(repository_name, "v1"), skopeo.ref(other, "v2"),
    )  # fmt: skip
    # then the new repository serves the same manifest and its blobs
    assert manifest_digest(client, other, "v2") == pushed.digest
    manifest = json.loads(skopeo.inspect_raw(other, "v2").stdout)
    for descriptor in [manifest["config"], *manifest["layers"]]:
        response = client.get(f"/v2/{other}/blobs/{descriptor['digest']}")
        assert response.status_code == 200
        assert sha256_digest(response.content) == descriptor["digest"]


def test_docker_schema2_image_keeps_its_media_type(
    skopeo: Skopeo, client: httpx.Client, repository_name: str, tmp_path: Path
) -> None:
    # given an OCI image that skopeo converts to Docker schema 2 on the way in
    source = tmp_path / "source"
    single_image(source, "v1", seed="docker-v2s2")
    skopeo.push_converted(source, "v1", repository_name, "v1", "--format", "v2s2")
    # when a Docker-aware client fetches the manifest
    response = client.get(
        f"/v2/{repository_name}/manifests/v1", headers={"Accept": MANIFEST_ACCEPT}
    )
    # then it is served as the Docker manifest it was pushed as, under its own digest
    assert response.status_code == 200
    assert response.headers["Content-Type"] == DOCKER_MANIFEST
    assert json.loads(response.content)["mediaType"] == DOCKER_MANIFEST
    assert response.headers["Docker-Content-Digest"] == sha256_digest(response.content)
    # and skopeo reads the image's configuration through it
    details = json.loads(
        skopeo("inspect", "--tls-verify=false", skopeo.ref(repository_name, "v1")).stdout
    )
    assert details["Architecture"] == "amd64"
    assert details["Digest"] == sha256_digest(response.content)


def test_docker_manifest_list_keeps_its_media_type_and_children(
    skopeo: Skopeo, client: httpx.Client, repository_name: str, tmp_path: Path
) -> None:
    # given a two-platform OCI index that skopeo converts to a Docker manifest list
    source = tmp_path / "source"
    multi_arch_image(source, "v1", seed="docker-list")
    skopeo.push_converted(source, "v1", repository_name, "v1", "--all", "--format", "v2s2")
    # when the list is fetched
    served = skopeo.inspect_raw(repository_name, "v1").stdout
    document = json.loads(served)
    # then it is a Docker manifest list whose children are Docker manifests, each pullable
    assert document["mediaType"] == DOCKER_MANIFEST_LIST
    assert manifest_digest(client, repository_name, "v1") == sha256_digest(served)
    for child in document["manifests"]:
        assert child["mediaType"] == DOCKER_MANIFEST
        raw = skopeo.inspect_raw(repository_name, child["digest"]).stdout
        assert sha256_digest(raw) == child["digest"]
        assert json.loads(raw)["mediaType"] == DOCKER_MANIFEST
