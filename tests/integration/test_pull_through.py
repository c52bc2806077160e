"""The pull-through cache against real upstreams on loopback: CNCF Distribution with htpasswd
as Docker Hub (its credentials in a secret made through the Secrets Manager API) and a second
ecrd as an ECR upstream; pulled by skopeo, httpx, boto3 and the Docker engine, byte-identical
to the upstream; served from the cache with the upstream stopped; a tag moved upstream
followed after the refresh interval; a wrong secret reported by Validate and by the pull."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    ACCOUNT_ID,
    ROOT_ACCESS_KEY_ID,
    ROOT_SECRET_ACCESS_KEY,
    EcrdServer,
)
from tests.distribution_registry import DistributionRegistry, require_distribution
from tests.integration.docker_engine import Docker
from tests.oci_layouts import Layout

HUB = "registry-1.docker.io"
UPSTREAM_ECR = f"{ACCOUNT_ID}.dkr.ecr.eu-west-1.amazonaws.com"
REFRESH_SECONDS = 1
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
ACCEPT = f"{OCI_MANIFEST}, {OCI_INDEX}"
HUB_USERS = {"puller": "s3cret"}


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("policy") / "policy.json"
    path.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    return path


@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """OCI layouts of the images the upstreams hold: tags one, two, multi."""
    folder = tmp_path_factory.mktemp("layouts") / "images"
    layout = Layout(folder)
    layout.tag(layout.add_image(seed="pull-through-one"), "one")
    layout.tag(layout.add_image(seed="pull-through-two"), "two")
    children = {
        arch: layout.add_image(arch, seed="pull-through-multi") for arch in ("amd64", "arm64")
    }
    layout.tag(layout.add_index(children), "multi")
    return folder


@pytest.fixture(scope="module")
def hub(
    tmp_path_factory: pytest.TempPathFactory, policy: Path, layouts: Path
) -> Iterator[DistributionRegistry]:
    require_distribution()
    registry = DistributionRegistry(tmp_path_factory.mktemp("hub"), HUB_USERS)
    registry.start()
    for tag, repository in (("one", "library/app"), ("one", "library/stops"),
                            ("one", "library/moving"), ("one", "library/once"),
                            ("multi", "library/multi"), ("two", "library/api")):  # fmt: skip
        registry.push(policy, layouts, tag, repository, "1")
    yield registry
    registry.stop()


@pytest.fixture(scope="module")
def upstream_ecrd(
    tmp_path_factory: pytest.TempPathFactory, policy: Path, layouts: Path
) -> Iterator[EcrdServer]:
    """A second ecrd, the ECR upstream, holding team/app:1."""
    instance = EcrdServer(tmp_path_factory.mktemp("upstream-ecrd") / "data")
    instance.start()
    subprocess.run(
        ["skopeo", "--policy", str(policy), "copy", "--preserve-digests",
         "--all", "--dest-tls-verify=false", "--dest-creds", f"AWS:{instance.registry_password()}",
         f"oci:{layouts}:two", f"docker://{instance.host}/team/app:1"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def cache(
    tmp_path_factory: pytest.TempPathFactory,
    hub: DistributionRegistry,
    upstream_ecrd: EcrdServer,
) -> Iterator[EcrdServer]:
    endpoints = {HUB: hub.url, UPSTREAM_ECR: upstream_ecrd.url}
    instance = EcrdServer(
        tmp_path_factory.mktemp("cache") / "data",
        environment={
            "ECRD_UPSTREAM_ENDPOINTS": json.dumps(endpoints),
            "ECRD_PULL_THROUGH_REFRESH_SECONDS": str(REFRESH_SECONDS),
            # The ECR upstream is reached with the server's own AWS credentials.
            "AWS_ACCESS_KEY_ID": ROOT_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": ROOT_SECRET_ACCESS_KEY,
            "AWS_CONFIG_FILE": "/nonexistent/ecrd-test-aws-config",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/ecrd-test-aws-credentials",
        },
    )
    instance.start()
    try:
        add_rules(instance)
        yield instance
    finally:
        instance.stop()


def add_rules(instance: EcrdServer) -> None:
    """The rules: Docker Hub with the right secret and with a wrong one, and an ECR upstream."""
    secrets = instance.ecr("secretsmanager")
    good = secrets.create_secret(
        Name="ecr-pullthroughcache/hub",
        SecretString=json.dumps({"username": "puller", "accessToken": "s3cret"}),
    )["ARN"]
    bad = secrets.create_secret(
        Name="ecr-pullthroughcache/hub-wrong",
        SecretString=json.dumps({"username": "puller", "accessToken": "wrong"}),
    )["ARN"]
    ecr = instance.ecr()
    ecr.create_pull_through_cache_rule(
        ecrRepositoryPrefix="hub", upstreamRegistryUrl=HUB, credentialArn=good
    )
    ecr.create_pull_through_cache_rule(
        ecrRepositoryPrefix="wronghub", upstreamRegistryUrl=HUB, credentialArn=bad
    )
    ecr.create_pull_through_cache_rule(
        ecrRepositoryPrefix="mirror", upstreamRegistryUrl=UPSTREAM_ECR, upstreamRegistry="ecr"
    )


def layout_blob(layouts: Path, digest: str) -> bytes:
    return (layouts / "blobs" / "sha256" / digest.split(":")[1]).read_bytes()


def layout_manifest(layouts: Path, tag: str) -> bytes:
    index = json.loads((layouts / "index.json").read_text())
    (entry,) = [
        m
        for m in index["manifests"]
        if m["annotations"]["org.opencontainers.image.ref.name"] == tag
    ]
    return layout_blob(layouts, entry["digest"])


def skopeo_pull(policy: Path, server: EcrdServer, reference: str, folder: Path) -> None:
    subprocess.run(
        ["skopeo", "--policy", str(policy), "copy", "--preserve-digests",
         "--src-tls-verify=false", "--src-creds", f"AWS:{server.registry_password()}",
         f"docker://{server.host}/{reference}", f"oci:{folder}:got"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip


def pulled_manifest(folder: Path) -> bytes:
    index = json.loads((folder / "index.json").read_text())
    return layout_blob(folder, index["manifests"][0]["digest"])


def authorized(server: EcrdServer) -> httpx.Client:
    login = base64.b64encode(f"AWS:{server.registry_password()}".encode()).decode()
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Basic {login}"}, timeout=60
    )


def test_a_first_pull_through_skopeo_is_byte_identical_to_the_upstream(
    cache: EcrdServer, policy: Path, layouts: Path, tmp_path: Path
) -> None:
    skopeo_pull(policy, cache, "hub/library/app:1", tmp_path / "pulled")
    manifest = pulled_manifest(tmp_path / "pulled")
    assert manifest == layout_manifest(layouts, "one")
    for layer in json.loads(manifest)["layers"]:
        assert layout_blob(tmp_path / "pulled", layer["digest"]) == layout_blob(
            layouts, layer["digest"]
        )
    # The repository was made on ECR's behalf, and the image is there.
    (image,) = cache.ecr().describe_images(repositoryName="hub/library/app")["imageDetails"]
    assert image["imageTags"] == ["1"]
    assert image["imageDigest"] == "sha256:" + hashlib.sha256(manifest).hexdigest()


def test_the_cached_tag_still_pulls_with_the_upstream_stopped(
    cache: EcrdServer, hub: DistributionRegistry, policy: Path, layouts: Path, tmp_path: Path
) -> None:
    skopeo_pull(policy, cache, "hub/library/stops:1", tmp_path / "first")
    hub.stop()
    try:
        time.sleep(REFRESH_SECONDS + 0.2)  # the tag is due for its check, which fails
        skopeo_pull(policy, cache, "hub/library/stops:1", tmp_path / "again")
        assert pulled_manifest(tmp_path / "again") == layout_manifest(layouts, "one")
        # Nothing cached and the upstream down: the pull fails with 503, no 500.
        with authorized(cache) as http:
            answer = http.get("/v2/hub/library/never/manifests/1", headers={"Accept": ACCEPT})
        assert answer.status_code == 503
        assert answer.json()["errors"][0]["code"] == "UNAVAILABLE"
    finally:
        hub.start()


def test_a_tag_moved_upstream_is_followed_after_the_refresh_interval(
    cache: EcrdServer, hub: DistributionRegistry, policy: Path, layouts: Path, tmp_path: Path
) -> None:
    skopeo_pull(policy, cache, "hub/library/moving:1", tmp_path / "before")
    assert pulled_manifest(tmp_path / "before") == layout_manifest(layouts, "one")
    hub.push(policy, layouts, "two", "library/moving", "1")
    # Within the interval the cached image is served; after it, the moved tag.
    time.sleep(REFRESH_SECONDS + 0.2)
    skopeo_pull(policy, cache, "hub/library/moving:1", tmp_path / "after")
    assert pulled_manifest(tmp_path / "after") == layout_manifest(layouts, "two")


def test_a_wrong_secret_fails_validate_and_the_pull(cache: EcrdServer) -> None:
    ecr = cache.ecr()
    good = ecr.validate_pull_through_cache_rule(ecrRepositoryPrefix="hub")
    assert good["isValid"] is True
    assert "failure" not in good
    wrong = ecr.validate_pull_through_cache_rule(ecrRepositoryPrefix="wronghub")
    assert wrong["isValid"] is False
    assert "credentials" in wrong["failure"]
    with authorized(cache) as http:
        answer = http.get("/v2/wronghub/library/app/manifests/1", headers={"Accept": ACCEPT})
    assert answer.status_code == 403
    assert answer.json()["errors"][0]["code"] == "DENIED"
    # A refused first pull makes no repository.
    names = [r["repositoryName"] for r in ecr.describe_repositories()["repositories"]]
    assert not [name for name in names if name.startswith("wronghub/")]


def test_an_ecr_upstream_may_be_another_ecrd(
    cache: EcrdServer, upstream_ecrd: EcrdServer, policy: Path, layouts: Path, tmp_path: Path
) -> None:
    skopeo_pull(policy, cache, "mirror/team/app:1", tmp_path / "mirrored")
    assert pulled_manifest(tmp_path / "mirrored") == layout_manifest(layouts, "two")


def test_an_index_brings_its_children_and_batch_get_image_pulls_through(
    cache: EcrdServer, layouts: Path
) -> None:
    with authorized(cache) as http:
        answer = http.get("/v2/hub/library/multi/manifests/1", headers={"Accept": ACCEPT})
    assert answer.status_code == 200
    assert answer.content == layout_manifest(layouts, "multi")
    children = {entry["digest"] for entry in answer.json()["manifests"]}
    ecr = cache.ecr()
    stored = {
        image["imageDigest"]
        for image in ecr.list_images(repositoryName="hub/library/multi")["imageIds"]
    }
    assert children < stored
    (image,) = ecr.batch_get_image(repositoryName="hub/library/api", imageIds=[{"imageTag": "1"}])[
        "images"
    ]
    assert image["imageManifest"].encode() == layout_manifest(layouts, "two")


def test_concurrent_first_pulls_fetch_the_manifest_and_each_blob_once(
    cache: EcrdServer, hub: DistributionRegistry, layouts: Path
) -> None:
    manifest = layout_manifest(layouts, "one")
    layer = json.loads(manifest)["layers"][0]["digest"]
    results: list[tuple[int, bytes]] = []
    lock = threading.Lock()

    def pull(path: str) -> None:
        with authorized(cache) as http:
            answer = http.get(path, headers={"Accept": ACCEPT})
        with lock:
            results.append((answer.status_code, answer.content))

    for path in ("/v2/hub/library/once/manifests/1", f"/v2/hub/library/once/blobs/{layer}"):
        results.clear()
        threads = [threading.Thread(target=pull, args=(path,)) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert len(results) == 6
        assert {status for status, _ in results} == {200}
        assert len({body for _, body in results}) == 1
    assert results[0][1] == layout_blob(layouts, layer)
    time.sleep(0.5)  # the registry writes its log line after the answer
    assert hub.requests_for("/v2/library/once/manifests/1") == 1
    assert hub.requests_for(f"/v2/library/once/blobs/{layer}") == 1


def test_docker_pulls_through_the_cache_and_again_with_the_upstream_stopped(
    cache: EcrdServer, hub: DistributionRegistry, docker: Docker, layouts: Path
) -> None:
    docker.login(cache.host, cache.registry_password())
    reference = f"{cache.host}/hub/library/app:1"
    docker("pull", reference)
    digests = json.loads(
        docker("image", "inspect", "--format", "{{json .RepoDigests}}", reference).stdout
    )
    expected = "sha256:" + hashlib.sha256(layout_manifest(layouts, "one")).hexdigest()
    assert digests == [f"{cache.host}/hub/library/app@{expected}"]
    docker("rmi", reference)
    hub.stop()
    try:
        docker("pull", reference)
    finally:
        hub.start()
