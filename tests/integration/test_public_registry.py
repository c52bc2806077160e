"""ECR Public on the data plane: skopeo and podman against a public host of its own.

The server serves private repositories at 127.0.0.1:<port> and public ones at
localhost:<port> (`public_registry_host`), so both hosts reach the same process while the
Host header tells them apart, as two DNS names would.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api_errors import expect_error
from tests.conftest import EcrdServer
from tests.integration.conftest import POLICY, REGISTRIES_CONF, Podman, Skopeo
from tests.integration.helpers import layout_blobs, layout_tops
from tests.oci_layouts import multi_arch_image, single_image

ALIAS = "ecrd-demo"


@pytest.fixture(scope="module")
def public_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EcrdServer]:
    instance = EcrdServer(tmp_path_factory.mktemp("public") / "data")
    instance.environment = {
        "ECRD_PUBLIC_REGISTRY_HOST": f"localhost:{instance.port}",
        "ECRD_PUBLIC_ALIAS": ALIAS,
    }
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def public_host(public_server: EcrdServer) -> str:
    return f"localhost:{public_server.port}"


@pytest.fixture(scope="module")
def public(public_server: EcrdServer) -> Any:
    return public_server.ecr("ecr-public")


@pytest.fixture(scope="module")
def bare_skopeo(public_server: EcrdServer, tmp_path_factory: pytest.TempPathFactory) -> Skopeo:
    """skopeo with no logins at all: every credential is given per call."""
    folder = tmp_path_factory.mktemp("bare-skopeo")
    (folder / "registries.conf").write_text(REGISTRIES_CONF)
    (folder / "policy.json").write_text(json.dumps(POLICY))
    environment = {k: v for k, v in os.environ.items() if k != "REGISTRY_AUTH_FILE"}
    environment["CONTAINERS_REGISTRIES_CONF"] = str(folder / "registries.conf")
    environment["REGISTRY_AUTH_FILE"] = str(folder / "empty-auth.json")
    return Skopeo(public_server, folder / "policy.json", environment)


def public_password(client: Any) -> str:
    token = client.get_authorization_token()["authorizationData"]["authorizationToken"]
    return str(base64.b64decode(token).decode().removeprefix("AWS:"))


def new_public_repository(public: Any) -> str:
    name = f"pub-{uuid.uuid4().hex[:10]}"
    public.create_repository(repositoryName=name)
    return name


def copy(skopeo: Skopeo, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return skopeo("copy", "--preserve-digests", *args, check=check)


def test_public_host_challenges_with_bearer_and_its_token_endpoint(
    public_server: EcrdServer, public_host: str, public: Any
) -> None:
    with httpx.Client(base_url=public_server.url, timeout=10) as http:
        # when an anonymous client pings the public host, then it is sent to the token realm
        ping = http.get("/v2/", headers={"Host": public_host})
        assert ping.status_code == 401
        assert ping.headers["www-authenticate"] == (
            f'Bearer realm="http://{public_host}/token",service="{public_host}"'
        )
        # and the private host keeps ECR's Basic challenge
        private = http.get("/v2/")
        assert private.headers["www-authenticate"].startswith("Basic realm=")
        # when the token endpoint is asked without credentials, then it grants an anonymous one
        anonymous = http.get("/token", headers={"Host": public_host})
        assert anonymous.status_code == 200
        assert anonymous.json()["token"] == "anonymous"
        # when asked with AWS:<ecr-public token>, then it hands that token back as Bearer
        password = public_password(public)
        signed_in = http.get("/token", headers={"Host": public_host}, auth=("AWS", password))
        assert signed_in.json()["token"] == password
        bearer = {"Host": public_host, "Authorization": f"Bearer {password}"}
        assert http.get("/v2/", headers=bearer).status_code == 200
        # and a made-up password gets nothing
        refused = http.get("/token", headers={"Host": public_host}, auth=("AWS", "made-up"))
        assert refused.status_code == 401


def test_skopeo_pushes_with_a_token_and_anyone_pulls(
    bare_skopeo: Skopeo, public: Any, public_host: str, tmp_path: Path
) -> None:
    # given a public repository and a multi-arch image
    name = new_public_repository(public)
    source = tmp_path / "source"
    pushed = multi_arch_image(source, "v1", seed="public-push")
    target = f"docker://{public_host}/{ALIAS}/{name}"
    # when skopeo pushes it with the ECR Public login (the Bearer flow)
    copy(
        bare_skopeo, "--all", "--dest-tls-verify=false",
        "--dest-creds", f"AWS:{public_password(public)}",
        f"oci:{source}:v1", f"{target}:v1",
    )  # fmt: skip
    # then the ECR Public API lists the tag with the image's digest
    (detail,) = public.describe_image_tags(repositoryName=name)["imageTagDetails"]
    assert detail["imageTag"] == "v1"
    assert detail["imageDetail"]["imageDigest"] == pushed.digest
    images = public.describe_images(repositoryName=name)["imageDetails"]
    tags = {image["imageDigest"]: image.get("imageTags", []) for image in images}
    # (the index and its two platform images)
    assert len(tags) == 3
    assert tags[pushed.digest] == ["v1"]
    # when anyone pulls it, without any credentials
    back = tmp_path / "back"
    copy(
        bare_skopeo, "--all", "--src-tls-verify=false", "--src-no-creds",
        f"{target}:v1", f"oci:{back}:v1",
    )  # fmt: skip
    # then every blob comes back byte-identical, under the same digest
    assert layout_tops(back)["v1"]["digest"] == pushed.digest
    assert layout_blobs(back) == layout_blobs(source)


def test_anonymous_push_is_refused_and_leaves_nothing(
    bare_skopeo: Skopeo, public: Any, public_host: str, tmp_path: Path
) -> None:
    # given an empty public repository
    name = new_public_repository(public)
    source = tmp_path / "source"
    single_image(source, "v1", seed="public-anonymous-push")
    # when an anonymous client pushes to it
    result = copy(
        bare_skopeo, "--dest-tls-verify=false", "--dest-no-creds",
        f"oci:{source}:v1", f"docker://{public_host}/{ALIAS}/{name}:v1",
        check=False,
    )  # fmt: skip
    # then skopeo fails as unauthorized and the repository stays empty
    assert result.returncode != 0
    assert "unauthorized" in result.stderr.lower()
    assert public.describe_images(repositoryName=name)["imageDetails"] == []


def test_a_push_needs_ecr_public_actions_and_an_existing_repository(
    public_server: EcrdServer, bare_skopeo: Skopeo, public: Any, public_host: str, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    single_image(source, "v1", seed="public-actions")
    name = new_public_repository(public)
    target = f"docker://{public_host}/{ALIAS}/{name}:v1"
    # given a user allowed every private ECR action but no ECR Public one: no public login
    ecr_only = public_server.create_key(
        user=f"ecr-{uuid.uuid4().hex[:8]}",
        policies=[{"Statement": [{"Effect": "Allow", "Action": "ecr:*", "Resource": "*"}]}],
    )
    expect_error(
        "AccessDeniedException",
        public_server.ecr_as(ecr_only, "ecr-public").get_authorization_token,
    )
    # and a user who may log in to ECR Public but not push
    login_only = public_server.create_key(
        user=f"login-{uuid.uuid4().hex[:8]}",
        policies=[
            {
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "ecr-public:GetAuthorizationToken",
                        "Resource": "*",
                    }
                ]
            }
        ],
    )
    login_password = public_password(public_server.ecr_as(login_only, "ecr-public"))
    # when it pushes, then it is denied, naming the ECR Public action
    denied = copy(
        bare_skopeo, "--dest-tls-verify=false", "--dest-creds", f"AWS:{login_password}",
        f"oci:{source}:v1", target,
        check=False,
    )  # fmt: skip
    assert denied.returncode != 0
    assert "ecr-public:" in denied.stderr
    # given a user allowed every ECR Public action
    public_user = public_server.create_key(
        user=f"pub-{uuid.uuid4().hex[:8]}",
        policies=[{"Statement": [{"Effect": "Allow", "Action": "ecr-public:*", "Resource": "*"}]}],
    )
    # when the ECR Public user pushes, then it works
    copy(
        bare_skopeo, "--dest-tls-verify=false",
        "--dest-creds", f"AWS:{public_password(public_server.ecr_as(public_user, 'ecr-public'))}",
        f"oci:{source}:v1", target,
    )  # fmt: skip
    assert [
        d["imageTag"] for d in public.describe_image_tags(repositoryName=name)["imageTagDetails"]
    ] == ["v1"]
    # when it pushes to a public repository that was never created, then it is refused
    missing = copy(
        bare_skopeo, "--dest-tls-verify=false",
        "--dest-creds", f"AWS:{public_password(public_server.ecr_as(public_user, 'ecr-public'))}",
        f"oci:{source}:v1", f"docker://{public_host}/{ALIAS}/never-created-{uuid.uuid4().hex[:6]}:v1",
        check=False,
    )  # fmt: skip
    assert missing.returncode != 0
    assert "name unknown" in missing.stderr.lower() or "not found" in missing.stderr.lower()


def test_podman_pulls_a_public_image_without_logging_in(
    podman: Podman,
    bare_skopeo: Skopeo,
    public: Any,
    public_host: str,
    tmp_path: Path,
) -> None:
    # given an image in a public repository
    name = new_public_repository(public)
    source = tmp_path / "source"
    pushed = single_image(source, "v1", seed="public-podman")
    copy(
        bare_skopeo, "--dest-tls-verify=false", "--dest-creds", f"AWS:{public_password(public)}",
        f"oci:{source}:v1", f"docker://{public_host}/{ALIAS}/{name}:v1",
    )  # fmt: skip
    # when podman pulls it with an auth file that holds no login
    empty_auth = tmp_path / "empty.json"
    empty_auth.write_text('{"auths": {}}')
    reference = f"{public_host}/{ALIAS}/{name}@{pushed.digest}"
    podman.pull(reference, "--authfile", str(empty_auth))
    # then podman has the very image
    assert podman.image_inspect(reference)["Digest"] == pushed.digest


def test_public_names_never_reach_private_repositories(
    public_server: EcrdServer, public: Any, public_host: str
) -> None:
    # given a private repository and a public one of the same name
    name = f"same-{uuid.uuid4().hex[:8]}"
    public_server.ecr().create_repository(repositoryName=name)
    public.create_repository(repositoryName=name)
    with httpx.Client(base_url=public_server.url, timeout=10) as http:
        root = {"Authorization": "Basic " + base64.b64encode(
            f"AWS:{public_server.registry_password()}".encode()).decode()}  # fmt: skip
        # then the private host lists the private one, under its plain name
        private = http.get(f"/v2/{name}/tags/list", headers=root)
        assert private.status_code == 200
        assert private.json()["name"] == name
        # and the public host lists the public one anonymously, under <alias>/<name>
        listed = http.get(f"/v2/{ALIAS}/{name}/tags/list", headers={"Host": public_host})
        assert listed.status_code == 200
        assert listed.json() == {"name": f"{ALIAS}/{name}", "tags": []}
        # while an alias no registry has, or a bare alias, is unknown on the public host
        unknown = http.get(f"/v2/nobody/{name}/tags/list", headers={"Host": public_host})
        assert unknown.status_code == 404
        assert unknown.json()["errors"][0]["code"] == "NAME_UNKNOWN"


def test_public_repositories_share_the_host_when_none_is_configured(
    server: EcrdServer, anonymous: httpx.Client, tmp_path: Path
) -> None:
    # given the session's server, whose public repositories share its one host
    public = server.ecr("ecr-public")
    name = f"shared-{uuid.uuid4().hex[:8]}"
    uri = public.create_repository(repositoryName=name)["repository"]["repositoryUri"]
    alias = public.describe_registries()["registries"][0]["aliases"][0]["name"]
    # then its URI is <host>/<alias>/<name> on that host
    assert uri == f"{server.host}/{alias}/{name}"
    # and anyone lists its tags there, while a private path still needs a login
    assert anonymous.get(f"/v2/{alias}/{name}/tags/list").json() == {
        "name": f"{alias}/{name}",
        "tags": [],
    }
    assert anonymous.get(f"/v2/{name}/tags/list").status_code == 401


def test_referrers_are_public_and_deletes_need_the_ecr_public_action(
    public_server: EcrdServer, bare_skopeo: Skopeo, public: Any, public_host: str, tmp_path: Path
) -> None:
    # given an image in a public repository
    name = new_public_repository(public)
    source = tmp_path / "source"
    pushed = single_image(source, "v1", seed="public-delete")
    password = public_password(public)
    copy(
        bare_skopeo, "--dest-tls-verify=false", "--dest-creds", f"AWS:{password}",
        f"oci:{source}:v1", f"docker://{public_host}/{ALIAS}/{name}:v1",
    )  # fmt: skip
    manifest_path = f"/v2/{ALIAS}/{name}/manifests/{pushed.digest}"
    with httpx.Client(base_url=public_server.url, timeout=10) as http:
        host = {"Host": public_host}
        # then anyone reads its referrers (an empty index)
        referrers = http.get(f"/v2/{ALIAS}/{name}/referrers/{pushed.digest}", headers=host)
        assert referrers.status_code == 200
        assert referrers.json()["manifests"] == []
        # when an anonymous client deletes it, then it is challenged and the image stays
        assert http.delete(manifest_path, headers=host).status_code == 401
        assert http.head(manifest_path, headers=host).status_code == 200
        # when the owner deletes it with its Bearer token, then it is gone for everyone
        bearer = {**host, "Authorization": f"Bearer {password}"}
        assert http.delete(manifest_path, headers=bearer).status_code == 202
        assert http.head(manifest_path, headers=host).status_code == 404
    assert public.describe_images(repositoryName=name)["imageDetails"] == []
