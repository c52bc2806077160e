"""podman (VFS store in a temporary folder) pulling from and pushing to ecrd."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.conftest import EcrdServer
from tests.integration.conftest import Podman, Skopeo
from tests.integration.helpers import manifest_digest, registry_tags, sha256_digest
from tests.oci_layouts import multi_arch_image, single_image


def test_pull_image_pushed_by_skopeo(
    podman: Podman, skopeo: Skopeo, server: EcrdServer, repository_name: str, tmp_path: Path
) -> None:
    # given an image skopeo pushed from an OCI layout
    source = tmp_path / "source"
    pushed = single_image(source, "v1", seed="podman-pull")
    skopeo.push(source, "v1", repository_name, "v1")
    config_digest = json.loads(skopeo.inspect_raw(repository_name, "v1").stdout)["config"]["digest"]
    image = f"{server.host}/{repository_name}:v1"
    # when podman pulls it by tag
    image_id = podman.pull(image)
    # then podman stored the image whose id is its config digest, under the manifest digest
    assert f"sha256:{image_id}" == config_digest
    details = podman.image_inspect(image)
    assert details["Digest"] == pushed.digest
    assert f"{server.host}/{repository_name}@{pushed.digest}" in details["RepoDigests"]
    assert image in details["RepoTags"]
    assert details["Architecture"] == "amd64"


def test_pull_by_digest(
    podman: Podman, skopeo: Skopeo, server: EcrdServer, repository_name: str, tmp_path: Path
) -> None:
    # given an image in the registry
    source = tmp_path / "source"
    pushed = single_image(source, "v1", seed="podman-digest")
    skopeo.push(source, "v1", repository_name, "v1")
    # when podman pulls it by manifest digest
    reference = f"{server.host}/{repository_name}@{pushed.digest}"
    podman.pull(reference)
    # then the pulled image carries that digest
    assert podman.image_inspect(reference)["Digest"] == pushed.digest


def test_push_to_another_repository_lists_the_tag(
    podman: Podman,
    skopeo: Skopeo,
    server: EcrdServer,
    client: httpx.Client,
    repository_name: str,
    tmp_path: Path,
) -> None:
    # given an image podman pulled from the registry
    source = tmp_path / "source"
    single_image(source, "v1", seed="podman-push")
    skopeo.push(source, "v1", repository_name, "v1")
    image = f"{server.host}/{repository_name}:v1"
    podman.pull(image)
    # when podman pushes it to another repository under a new tag
    other = f"{repository_name}/pushed-by-podman"
    podman.push(image, f"{server.host}/{other}:v2")
    # then the registry lists the tag in the new repository
    assert registry_tags(client, other) == ["v2"]
    # and the manifest it serves there is complete: every blob is present and intact
    digest = manifest_digest(client, other, "v2")
    raw = skopeo.inspect_raw(other, "v2").stdout
    assert sha256_digest(raw) == digest
    manifest = json.loads(raw)
    for descriptor in [manifest["config"], *manifest["layers"]]:
        blob = client.get(f"/v2/{other}/blobs/{descriptor['digest']}")
        assert blob.status_code == 200
        assert sha256_digest(blob.content) == descriptor["digest"]
        assert len(blob.content) == descriptor["size"]
    # and podman can pull back what it pushed (the same image id)
    assert podman.pull(f"{server.host}/{other}:v2") == podman.pull(image)


def test_pull_picks_the_platform_from_an_index(
    podman: Podman, skopeo: Skopeo, server: EcrdServer, repository_name: str, tmp_path: Path
) -> None:
    # given a two-platform image index in the registry
    source = tmp_path / "source"
    multi_arch_image(source, "v1", seed="podman-multi")
    skopeo.push(source, "v1", repository_name, "v1", "--all")
    raw_index = skopeo.inspect_raw(repository_name, "v1").stdout
    index = json.loads(raw_index)
    arm64 = next(m for m in index["manifests"] if m["platform"]["architecture"] == "arm64")
    arm64_manifest = json.loads(skopeo.inspect_raw(repository_name, arm64["digest"]).stdout)
    arm64_config_digest = arm64_manifest["config"]["digest"]
    image = f"{server.host}/{repository_name}:v1"
    # when podman pulls the arm64 variant by the index's tag
    podman.pull(image, "--arch", "arm64", "--os", "linux")
    # then it stored the arm64 image, found through the index
    details = podman.image_inspect(image)
    assert details["Architecture"] == "arm64"
    assert f"sha256:{details['Id']}" == arm64_config_digest
    # and it knows the image by the index digest and by the arm64 manifest digest
    assert details["Digest"] == sha256_digest(raw_index)
    assert f"{server.host}/{repository_name}@{arm64['digest']}" in details["RepoDigests"]


def test_podman_login_with_a_registry_token_then_pulls_with_it(
    podman: Podman, skopeo: Skopeo, server: EcrdServer, repository_name: str, tmp_path: Path
) -> None:
    # given an image in the registry
    source = tmp_path / "source"
    pushed = single_image(source, "v1", seed="podman-login")
    skopeo.push(source, "v1", repository_name, "v1")
    authfile = tmp_path / "podman-auth.json"
    # when podman logs in with a password the registry never issued, then it is refused
    refused = podman(
        "login", "--tls-verify=false", "--authfile", str(authfile),
        "-u", "AWS", "-p", "not-a-token", server.host,
        check=False,
    )  # fmt: skip
    assert refused.returncode != 0
    assert not authfile.exists() or server.host not in authfile.read_text()
    # when it logs in as `aws ecr get-login-password | podman login` does
    podman(
        "login", "--tls-verify=false", "--authfile", str(authfile),
        "-u", "AWS", "-p", server.registry_password(), server.host,
    )  # fmt: skip
    # then that login alone pulls the image
    reference = f"{server.host}/{repository_name}@{pushed.digest}"
    podman.pull(reference, "--authfile", str(authfile))
    assert podman.image_inspect(reference)["Digest"] == pushed.digest
