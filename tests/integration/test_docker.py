"""The real Docker engine against ecrd: login, push, pull, manifest lists, immutable tags and
pull-only users, checked against what the registry stores (boto3) and the image's own config.

Images are built offline as OCI layouts (tests/oci_layouts.py) and loaded into the engine
through a docker-archive; one dockerd serves the whole session (docker_engine.py).
"""

from __future__ import annotations

import base64
import json
import sys
import uuid
from pathlib import Path
from typing import Any

from tests.conftest import (
    REGION,
    ROOT_ACCESS_KEY_ID,
    ROOT_SECRET_ACCESS_KEY,
    EcrdServer,
    clean_environment,
)
from tests.integration.conftest import Skopeo
from tests.integration.docker_engine import (
    Docker,
    DockerEngine,
    LoadedImage,
    load_image,
    output_tail,
    run_command,
)
from tests.integration.helpers import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    layout_blob,
    sha256_digest,
)
from tests.oci_layouts import Layout

PULL_ACTIONS = [
    "ecr:GetAuthorizationToken",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
    "ecr:BatchCheckLayerAvailability",
]


def registry_digest(server: EcrdServer, repository: str, tag: str) -> str:
    """The manifest digest the registry stores under `tag`, by DescribeImages."""
    (detail,) = server.ecr().describe_images(
        repositoryName=repository, imageIds=[{"imageTag": tag}]
    )["imageDetails"]
    return str(detail["imageDigest"])


def stored_images(server: EcrdServer, repository: str) -> list[dict[str, str]]:
    return list(server.ecr().list_images(repositoryName=repository)["imageIds"])


def pushed(docker: Docker, image: LoadedImage, reference: str) -> str:
    """Tag the loaded image as `reference`, push it and return the digest docker reported."""
    docker("tag", image.local_name, reference)
    return docker.push(reference)


def pushed_by_root(
    docker: Docker, server: EcrdServer, folder: Path, policy: Path, reference: str
) -> tuple[LoadedImage, str]:
    """A tiny image loaded into the engine and pushed as `reference` by the logged-in root;
    the image and the digest docker reported."""
    image = load_image(docker, folder, policy)
    docker.login(server.host, server.registry_password())
    return image, pushed(docker, image, reference)


def repo_digests(docker: Docker, reference: str) -> list[str]:
    result = docker("image", "inspect", "--format", "{{json .RepoDigests}}", reference)
    return list(json.loads(result.stdout))


def aws_login_password(server: EcrdServer, folder: Path) -> str:
    """`aws ecr get-login-password` as the root, configured only by environment variables."""
    environment = {
        key: value for key, value in clean_environment().items() if not key.startswith("AWS_")
    }
    environment.update(
        AWS_ACCESS_KEY_ID=ROOT_ACCESS_KEY_ID,
        AWS_SECRET_ACCESS_KEY=ROOT_SECRET_ACCESS_KEY,
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE=str(folder / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(folder / "no-aws-credentials"),
    )
    aws = str(Path(sys.executable).parent / "aws")
    result = run_command(
        [aws, "ecr", "get-login-password", "--endpoint-url", server.url], environment=environment
    )
    return result.stdout.strip()


def stored_login(docker: Docker, host: str) -> str | None:
    """The `user:password` docker stored for `host` in its config, or None."""
    config_file = docker.config_folder / "config.json"
    if not config_file.exists():
        return None
    auth = json.loads(config_file.read_text()).get("auths", {}).get(host, {}).get("auth")
    return base64.b64decode(auth).decode() if auth else None


def user_password(server: EcrdServer, key: Any) -> str:
    """A registry password from GetAuthorizationToken signed with `key`."""
    (data,) = server.ecr_as(key).get_authorization_token()["authorizationData"]
    user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    if user != "AWS":
        raise AssertionError(f"authorization token user is {user!r}, not AWS")
    return password


# Logging in


def test_login_with_get_login_password_succeeds_and_a_made_up_password_is_refused(
    server: EcrdServer, docker: Docker, docker_engine: DockerEngine, tmp_path: Path
) -> None:
    # given the password `aws ecr get-login-password` prints for the root
    password = aws_login_password(server, tmp_path)
    # when it is piped into docker login
    accepted = docker.login(server.host, password, check=False)
    # then docker logs in and keeps AWS:<password> for the registry's host
    assert accepted.returncode == 0, output_tail(accepted)
    assert "Login Succeeded" in accepted.stdout, output_tail(accepted)
    assert stored_login(docker, server.host) == f"AWS:{password}"
    # when another client logs in with a made-up password
    stranger = Docker(docker_engine, tmp_path / "stranger-config")
    refused = stranger.login(server.host, "made-up-" + uuid.uuid4().hex, check=False)
    # then the registry refuses it (its token endpoint answers 401 with ecrd's reason) and
    # docker stores nothing
    assert refused.returncode != 0, output_tail(refused)
    assert "unauthorized: invalid username or authorization token" in refused.stderr, output_tail(
        refused
    )
    assert stored_login(stranger, server.host) is None


# Pushing and pulling


def test_push_is_visible_through_describe_images_with_the_digest_docker_reported(
    server: EcrdServer, docker: Docker, skopeo_policy: Path, repository_name: str, tmp_path: Path
) -> None:
    # given an image loaded into the engine, and docker logged in as the root
    image = load_image(docker, tmp_path, skopeo_policy)
    docker.login(server.host, server.registry_password())
    # when docker pushes it under a tag of the registry
    digest = pushed(docker, image, f"{server.host}/{repository_name}:v1")
    # then DescribeImages lists the tag under the digest docker reported, as a Docker manifest
    (detail,) = server.ecr().describe_images(repositoryName=repository_name)["imageDetails"]
    assert detail["imageDigest"] == digest
    assert detail["imageTags"] == ["v1"]
    assert detail["imageManifestMediaType"] == DOCKER_MANIFEST
    # and the stored manifest names the image's own config, so its image id survives
    (stored,) = server.ecr().batch_get_image(
        repositoryName=repository_name, imageIds=[{"imageDigest": digest}]
    )["images"]
    assert sha256_digest(stored["imageManifest"].encode()) == digest
    assert json.loads(stored["imageManifest"])["config"]["digest"] == image.image_id


def test_pull_by_tag_and_by_digest_after_rmi_gives_back_the_same_image(
    server: EcrdServer, docker: Docker, skopeo_policy: Path, repository_name: str, tmp_path: Path
) -> None:
    # given an image docker pushed, then removed from the engine
    reference = f"{server.host}/{repository_name}"
    image, digest = pushed_by_root(docker, server, tmp_path, skopeo_policy, f"{reference}:v1")
    docker("rmi", "--force", image.image_id)
    assert not docker.has_image(f"{reference}:v1")
    # when docker pulls it by tag
    by_tag = docker("pull", f"{reference}:v1")
    # then it gets the same image id, under the digest the registry stores
    assert f"Digest: {digest}" in by_tag.stdout, output_tail(by_tag)
    assert docker.image_id(f"{reference}:v1") == image.image_id
    assert registry_digest(server, repository_name, "v1") == digest
    assert repo_digests(docker, f"{reference}:v1") == [f"{reference}@{digest}"]
    # when it is removed again and pulled by digest
    docker("rmi", "--force", image.image_id)
    assert not docker.has_image(f"{reference}@{digest}")
    by_digest = docker("pull", f"{reference}@{digest}")
    # then the same image comes back
    assert f"Digest: {digest}" in by_digest.stdout, output_tail(by_digest)
    assert docker.image_id(f"{reference}@{digest}") == image.image_id


def test_manifest_push_stores_a_list_of_both_platforms(
    server: EcrdServer, docker: Docker, skopeo_policy: Path, repository_name: str, tmp_path: Path
) -> None:
    # given an amd64 and an arm64 image, each pushed under its own tag
    docker.login(server.host, server.registry_password())
    reference = f"{server.host}/{repository_name}"
    seed = uuid.uuid4().hex
    platform_digests = {
        arch: pushed(
            docker, load_image(docker, tmp_path, skopeo_policy, arch, seed), f"{reference}:{arch}"
        )
        for arch in ("amd64", "arm64")
    }
    # when docker manifest creates a list of the two and pushes it (plain HTTP: --insecure)
    docker(
        "manifest", "create", "--insecure",
        f"{reference}:v1", f"{reference}:amd64", f"{reference}:arm64",
    )  # fmt: skip
    pushed_list = docker("manifest", "push", "--insecure", "--purge", f"{reference}:v1")
    list_digest = pushed_list.stdout.strip().splitlines()[-1]
    # then the registry stores under v1 a manifest list of both platforms' manifests
    (stored,) = server.ecr().batch_get_image(
        repositoryName=repository_name,
        imageIds=[{"imageTag": "v1"}],
        acceptedMediaTypes=[DOCKER_MANIFEST_LIST, OCI_INDEX],
    )["images"]
    assert stored["imageId"]["imageDigest"] == list_digest
    assert sha256_digest(stored["imageManifest"].encode()) == list_digest
    assert stored["imageManifestMediaType"] == DOCKER_MANIFEST_LIST
    listed = {
        child["platform"]["architecture"]: child["digest"]
        for child in json.loads(stored["imageManifest"])["manifests"]
    }
    assert listed == platform_digests
    # and docker manifest inspect, reading the registry (the local list was purged), agrees
    inspected = json.loads(docker("manifest", "inspect", "--insecure", f"{reference}:v1").stdout)
    assert inspected["mediaType"] == DOCKER_MANIFEST_LIST
    assert {
        (child["platform"]["architecture"], child["platform"]["os"], child["digest"])
        for child in inspected["manifests"]
    } == {(arch, "linux", digest) for arch, digest in platform_digests.items()}


def test_push_over_an_immutable_tag_is_refused_and_keeps_the_first_image(
    server: EcrdServer, docker: Docker, skopeo_policy: Path, repository_name: str, tmp_path: Path
) -> None:
    # given a repository with immutable tags, holding an image under v1
    server.ecr().create_repository(repositoryName=repository_name, imageTagMutability="IMMUTABLE")
    docker.login(server.host, server.registry_password())
    reference = f"{server.host}/{repository_name}:v1"
    first_digest = pushed(docker, load_image(docker, tmp_path, skopeo_policy), reference)
    # when docker pushes a different image as v1
    second = load_image(docker, tmp_path, skopeo_policy)
    docker("tag", second.local_name, reference)
    refused = docker("push", reference, check=False)
    # then the push fails, saying the tag is immutable
    assert refused.returncode != 0, output_tail(refused)
    assert "immutable" in (refused.stdout + refused.stderr).lower(), output_tail(refused)
    # and the registry still holds only the first image under v1
    assert registry_digest(server, repository_name, "v1") == first_digest
    assert stored_images(server, repository_name) == [
        {"imageDigest": first_digest, "imageTag": "v1"}
    ]


# Who may do what


def test_pull_only_user_pulls_but_its_push_is_denied(
    server: EcrdServer,
    docker: Docker,
    docker_engine: DockerEngine,
    skopeo_policy: Path,
    repository_name: str,
    tmp_path: Path,
) -> None:
    # given an image the root pushed, no longer in the engine
    reference = f"{server.host}/{repository_name}"
    image, digest = pushed_by_root(docker, server, tmp_path, skopeo_policy, f"{reference}:v1")
    docker("rmi", "--force", image.image_id)
    # and a user whose identity policy allows only pulling, logged in with its own token
    key = server.create_key(
        user=f"puller-{uuid.uuid4().hex[:10]}",
        policies=[
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": PULL_ACTIONS, "Resource": "*"}],
            }
        ],
    )
    puller = Docker(docker_engine, tmp_path / "puller-config")
    puller.login(server.host, user_password(server, key))
    # when the user pulls the image
    puller("pull", f"{reference}:v1")
    # then it has the very image the root pushed
    assert puller.image_id(f"{reference}:v1") == image.image_id
    assert repo_digests(puller, f"{reference}:v1") == [f"{reference}@{digest}"]
    # when the user pushes another image to the repository
    other = load_image(puller, tmp_path, skopeo_policy)
    puller("tag", other.local_name, f"{reference}:v2")
    refused = puller("push", f"{reference}:v2", check=False)
    # then docker fails because the registry denied it, as ECR words it
    assert refused.returncode != 0, output_tail(refused)
    assert "denied: User: " in refused.stderr, output_tail(refused)
    assert "is not authorized to perform: ecr:" in refused.stderr, output_tail(refused)
    # and nothing new appears in the repository
    assert stored_images(server, repository_name) == [{"imageDigest": digest, "imageTag": "v1"}]


# Pulling without logging in


def test_anonymous_pull_of_a_repository_whose_policy_grants_everyone(
    server: EcrdServer,
    docker: Docker,
    docker_engine: DockerEngine,
    skopeo_policy: Path,
    repository_name: str,
    tmp_path: Path,
) -> None:
    # given an image the root pushed to a repository whose policy lets anyone pull
    reference = f"{server.host}/{repository_name}:v1"
    image, digest = pushed_by_root(docker, server, tmp_path, skopeo_policy, reference)
    server.ecr().set_repository_policy(
        repositoryName=repository_name,
        policyText=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "AnyonePulls",
                        "Effect": "Allow",
                        "Principal": "*",
                        "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                    }
                ],
            }
        ),
    )
    docker("rmi", "--force", image.image_id)
    # when a client that never logged in pulls it
    anonymous = Docker(docker_engine, tmp_path / "anonymous-config")
    pulled = anonymous("pull", reference, check=False)
    # then it gets the very image
    assert pulled.returncode == 0, output_tail(pulled)
    assert f"Digest: {digest}" in pulled.stdout, output_tail(pulled)
    assert anonymous.image_id(reference) == image.image_id


def test_anonymous_pull_of_an_ecr_public_repository_on_the_shared_host(
    server: EcrdServer,
    docker: Docker,
    skopeo: Skopeo,
    tmp_path: Path,
) -> None:
    # given an image in a public repository of the session's server, whose public
    # repositories share its host as <alias>/<name>
    public = server.ecr("ecr-public")
    name = f"docker-{uuid.uuid4().hex[:10]}"
    public.create_repository(repositoryName=name)
    alias = public.describe_registries()["registries"][0]["aliases"][0]["name"]
    token = public.get_authorization_token()["authorizationData"]["authorizationToken"]
    public_password = base64.b64decode(token).decode().removeprefix("AWS:")
    layout_folder = tmp_path / "layout"
    layout = Layout(layout_folder)
    manifest_descriptor = layout.add_image(layer_bytes=512, seed=uuid.uuid4().hex)
    layout.tag(manifest_descriptor, "v1")
    config_digest = json.loads(layout_blob(layout_folder, manifest_descriptor.digest))["config"][
        "digest"
    ]
    skopeo(
        "copy", "--preserve-digests", "--dest-tls-verify=false",
        "--dest-creds", f"AWS:{public_password}",
        f"oci:{layout_folder}:v1", f"docker://{server.host}/{alias}/{name}:v1",
    )  # fmt: skip
    # when docker, never logged in, pulls it
    reference = f"{server.host}/{alias}/{name}:v1"
    pulled = docker("pull", reference, check=False)
    # then it gets the very image under the pushed digest
    assert pulled.returncode == 0, output_tail(pulled)
    assert f"Digest: {manifest_descriptor.digest}" in pulled.stdout, output_tail(pulled)
    assert docker.image_id(reference) == config_digest
