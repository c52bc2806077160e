"""The `aws ecr` command line (AWS CLI v1) against the real server, and `skopeo login` with it."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.aws.conftest import REGION
from tests.conftest import ROOT_ACCESS_KEY_ID, ROOT_SECRET_ACCESS_KEY, EcrdServer
from tests.integration.conftest import POLICY, REGISTRIES_CONF, Skopeo
from tests.integration.helpers import OCI_MANIFEST, layout_blob, run
from tests.oci_layouts import single_image


class AwsCli:
    """`aws` pointed at one server, with dummy credentials and no developer config."""

    def __init__(self, server: EcrdServer, home: Path) -> None:
        self.server = server
        self.environment = {
            key: value for key, value in os.environ.items() if not key.startswith("AWS_")
        }
        self.environment.update(
            {
                "AWS_ACCESS_KEY_ID": ROOT_ACCESS_KEY_ID,
                "AWS_SECRET_ACCESS_KEY": ROOT_SECRET_ACCESS_KEY,
                "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "AWS_DEFAULT_REGION": REGION,
                "AWS_PAGER": "",
                "HOME": str(home),
            }
        )

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(
            [
                sys.executable, "-m", "awscli",
                "--endpoint-url", self.server.url,
                "--region", REGION,
                "--output", "json",
                *args,
            ],
            check=check,
            env=self.environment,
        )  # fmt: skip

    def json(self, *args: str) -> Any:
        return json.loads(self(*args).stdout)


@pytest.fixture
def aws(server: EcrdServer, tmp_path: Path) -> AwsCli:
    return AwsCli(server, tmp_path)


@pytest.fixture
def cli_skopeo(server: EcrdServer, aws: AwsCli, tmp_path: Path) -> Skopeo:
    """skopeo with a policy and registries.conf of the test's own, logged in as the README
    says: with the password `aws ecr get-login-password` prints."""
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo is not installed")
    folder = tmp_path / "containers"
    folder.mkdir()
    (folder / "registries.conf").write_text(REGISTRIES_CONF)
    (folder / "policy.json").write_text(json.dumps(POLICY))
    environment = dict(os.environ)
    environment["CONTAINERS_REGISTRIES_CONF"] = str(folder / "registries.conf")
    environment["REGISTRY_AUTH_FILE"] = str(folder / "auth.json")
    skopeo = Skopeo(server, folder / "policy.json", environment)
    password = aws("ecr", "get-login-password").stdout.strip()
    skopeo("login", "--tls-verify=false", "-u", "AWS", "-p", password, server.host)
    return skopeo


@pytest.fixture
def cli_repository() -> str:
    return f"cli/{uuid.uuid4().hex[:12]}"


def test_create_repository_returns_its_uri_and_refuses_a_second_time(
    aws: AwsCli, server: EcrdServer, cli_repository: str
) -> None:
    # when a repository is created from the command line
    created = aws.json("ecr", "create-repository", "--repository-name", cli_repository)
    # then the answer describes it, with the URI clients push to
    repository = created["repository"]
    assert repository["repositoryName"] == cli_repository
    assert repository["repositoryUri"] == f"{server.host}/{cli_repository}"
    assert repository["imageTagMutability"] == "MUTABLE"
    # and creating it again fails with the documented error
    again = aws("ecr", "create-repository", "--repository-name", cli_repository, check=False)
    assert again.returncode != 0
    assert "RepositoryAlreadyExistsException" in again.stderr


def test_describe_images_lists_a_pushed_image_with_its_tag(
    aws: AwsCli, cli_skopeo: Skopeo, cli_repository: str, tmp_path: Path
) -> None:
    # given an image pushed with skopeo under the tag v1
    source = tmp_path / "source"
    pushed = single_image(source, "v1", seed="cli-describe")
    cli_skopeo.push(source, "v1", cli_repository, "v1")
    # when the CLI describes the repository's images
    described = aws.json("ecr", "describe-images", "--repository-name", cli_repository)
    # then the image is listed under its digest, with its tag and media type
    (detail,) = described["imageDetails"]
    assert detail["imageDigest"] == pushed.digest
    assert detail["imageTags"] == ["v1"]
    assert detail["imageManifestMediaType"] == OCI_MANIFEST
    # and filtering for untagged images leaves it out
    untagged = aws.json(
        "ecr", "describe-images", "--repository-name", cli_repository,
        "--filter", "tagStatus=UNTAGGED",
    )  # fmt: skip
    assert untagged["imageDetails"] == []
    tagged = aws.json(
        "ecr", "describe-images", "--repository-name", cli_repository,
        "--filter", "tagStatus=TAGGED",
    )  # fmt: skip
    assert [d["imageDigest"] for d in tagged["imageDetails"]] == [pushed.digest]


def test_untagged_filter_lists_an_image_whose_tag_moved_away(
    aws: AwsCli, cli_skopeo: Skopeo, cli_repository: str, tmp_path: Path
) -> None:
    # given an image pushed as v1, then another image pushed over the same tag
    first_source, second_source = tmp_path / "first", tmp_path / "second"
    first = single_image(first_source, "v1", seed="cli-untagged-1")
    second = single_image(second_source, "v1", seed="cli-untagged-2")
    cli_skopeo.push(first_source, "v1", cli_repository, "v1")
    cli_skopeo.push(second_source, "v1", cli_repository, "v1")
    # when the CLI describes the untagged images
    untagged = aws.json(
        "ecr", "describe-images", "--repository-name", cli_repository,
        "--filter", "tagStatus=UNTAGGED",
    )  # fmt: skip
    # then only the first image is listed, without tags
    (detail,) = untagged["imageDetails"]
    assert detail["imageDigest"] == first.digest
    assert "imageTags" not in detail
    every = aws.json("ecr", "describe-images", "--repository-name", cli_repository)
    assert {d["imageDigest"] for d in every["imageDetails"]} == {first.digest, second.digest}


def test_batch_delete_image_by_tag_lists_the_deleted_id(
    aws: AwsCli, cli_skopeo: Skopeo, cli_repository: str, tmp_path: Path
) -> None:
    # given an image pushed under the tag v1
    source = tmp_path / "source"
    pushed = single_image(source, "v1", seed="cli-delete")
    cli_skopeo.push(source, "v1", cli_repository, "v1")
    # when the CLI deletes it by tag
    deleted = aws.json(
        "ecr", "batch-delete-image", "--repository-name", cli_repository,
        "--image-ids", "imageTag=v1",
    )  # fmt: skip
    # then the answer names the deleted image and reports no failures
    assert deleted["imageIds"] == [{"imageDigest": pushed.digest, "imageTag": "v1"}]
    assert deleted["failures"] == []
    # and the repository no longer holds it
    described = aws.json("ecr", "describe-images", "--repository-name", cli_repository)
    assert described["imageDetails"] == []
    # and deleting it again is a per-image failure, not an error
    again = aws.json(
        "ecr", "batch-delete-image", "--repository-name", cli_repository,
        "--image-ids", "imageTag=v1",
    )  # fmt: skip
    assert again["imageIds"] == []
    assert [f["failureCode"] for f in again["failures"]] == ["ImageNotFound"]


def test_login_password_lets_skopeo_log_in_and_inspect(
    aws: AwsCli, cli_skopeo: Skopeo, server: EcrdServer, cli_repository: str, tmp_path: Path
) -> None:
    # given an image in the registry
    source = tmp_path / "source"
    pushed = single_image(source, "v1", seed="cli-login")
    cli_skopeo.push(source, "v1", cli_repository, "v1")
    # when the CLI prints a login password
    password = aws("ecr", "get-login-password").stdout.strip()
    assert password
    assert "\n" not in password
    # then skopeo logs in with it as user AWS, storing it in the given auth file
    authfile = tmp_path / "auth.json"
    cli_skopeo(
        "login", "--tls-verify=false", "--authfile", str(authfile),
        "-u", "AWS", "-p", password, server.host,
    )  # fmt: skip
    stored = json.loads(authfile.read_text())["auths"][server.host]["auth"]
    assert base64.b64decode(stored).decode() == f"AWS:{password}"
    # and skopeo inspects the image with that auth file
    inspected = cli_skopeo(
        "inspect", "--raw", "--tls-verify=false", "--authfile", str(authfile),
        cli_skopeo.ref(cli_repository, "v1"),
    )  # fmt: skip
    assert inspected.stdout.encode() == layout_blob(source, pushed.digest)


def test_wrong_password_is_refused_by_skopeo_login(
    cli_skopeo: Skopeo, server: EcrdServer, tmp_path: Path
) -> None:
    # when skopeo logs in with a password the registry never issued
    authfile = tmp_path / "auth.json"
    result = cli_skopeo(
        "login", "--tls-verify=false", "--authfile", str(authfile),
        "-u", "AWS", "-p", "not-a-token", server.host,
        check=False,
    )  # fmt: skip
    # then the login fails
    assert result.returncode != 0


def test_describe_repositories_pages_collect_every_repository(
    own_server: EcrdServer, tmp_path: Path
) -> None:
    # given an empty registry with five repositories created from the command line
    aws = AwsCli(own_server, tmp_path)
    names = sorted(f"page/repo-{number}" for number in range(5))
    for name in names:
        aws("ecr", "create-repository", "--repository-name", name)
    # when the CLI fetches them two per request and follows the pages itself
    whole = aws.json("ecr", "describe-repositories", "--page-size", "2")
    # then every repository is listed once
    assert sorted(r["repositoryName"] for r in whole["repositories"]) == names
    assert "NextToken" not in whole
    # when the caller asks for two at a time and follows NextToken
    collected: list[str] = []
    token: str | None = None
    calls = 0
    while True:
        paging = ["--max-items", "2"] + (["--starting-token", token] if token else [])
        page = aws.json("ecr", "describe-repositories", *paging)
        calls += 1
        assert len(page["repositories"]) <= 2
        collected.extend(r["repositoryName"] for r in page["repositories"])
        token = page.get("NextToken")
        if token is None:
            break
        assert calls < 10
    # then the pages together hold each repository exactly once
    assert sorted(collected) == names
    assert len(collected) == len(set(collected))
    assert calls == 3
