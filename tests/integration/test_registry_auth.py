"""Who may do what on /v2/: registry logins, identity, repository and registry policies,
anonymous pulls, presigned download URLs and blob mounts, through skopeo and raw HTTP."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from botocore.exceptions import ClientError

from ecrd.auth.tokens import TokenIssuer
from tests.conftest import (
    ACCOUNT_ID,
    REGION,
    ROOT_SECRET_ACCESS_KEY,
    AccessKeyPair,
    EcrdServer,
    basic_login,
    clean_environment,
)
from tests.integration.conftest import Skopeo, write_auth_file
from tests.integration.helpers import (
    MANIFEST_ACCEPT,
    OCI_MANIFEST,
    layout_blob,
    layout_blobs,
    layout_tops,
    manifest_digest,
)
from tests.oci_layouts import Descriptor, single_image

OTHER_ACCOUNT_ID = "111111111111"
CHALLENGE = 'Basic realm="{url}",service="ecr.amazonaws.com"'
TOKEN_EXPIRED = "Your authorization token has expired. Reauthenticate and try again."
PULL_ACTIONS = [
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
    "ecr:BatchCheckLayerAvailability",
]
PUSH_ACTIONS = [
    "ecr:BatchCheckLayerAvailability",
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:PutImage",
]

# Every secret and registry password these tests hand out; the last test looks for them in
# the server's log.
SECRETS_USED: list[str] = []


# Helpers


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def repository_arn(name: str, account_id: str = ACCOUNT_ID) -> str:
    return f"arn:aws:ecr:{REGION}:{account_id}:repository/{name}"


def user_arn(name: str, account_id: str = ACCOUNT_ID) -> str:
    return f"arn:aws:iam::{account_id}:user/{name}"


def identity_policy(actions: list[str], resource: str = "*") -> dict[str, Any]:
    """Allow `actions` on `resource`, and GetAuthorizationToken (which acts on "*")."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": actions, "Resource": resource},
            {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
        ],
    }


def new_key(
    server: EcrdServer,
    account_id: str = ACCOUNT_ID,
    user: str | None = None,
    policies: list[Any] | None = None,
) -> AccessKeyPair:
    key = server.create_key(account_id, user=user, policies=policies or [])
    SECRETS_USED.append(key.secret_access_key)
    return key


def new_user(
    server: EcrdServer, actions: list[str], resource: str = "*"
) -> tuple[str, AccessKeyPair]:
    name = unique("user")
    return name, new_key(server, user=name, policies=[identity_policy(actions, resource)])


def registry_token(server: EcrdServer, key: AccessKeyPair) -> str:
    """The registry password GetAuthorizationToken gives `key`'s principal."""
    password = server.registry_password(key)
    SECRETS_USED.append(password)
    return password


def basic(password: str, user: str = "AWS") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def skopeo_as(
    skopeo: Skopeo, folder: Path, password: str | None, server: EcrdServer | None = None
) -> Skopeo:
    """skopeo logged in to `server` (default: the session's) with `password`, through an
    auth file of its own; None: no login at all, not even an auth file."""
    server = server or skopeo.server
    environment = dict(skopeo.environment)
    if password is None:
        environment.pop("REGISTRY_AUTH_FILE", None)
    else:
        folder.mkdir(parents=True, exist_ok=True)
        auth_file = write_auth_file(folder / "auth.json", server.host, password)
        environment["REGISTRY_AUTH_FILE"] = str(auth_file)
    return Skopeo(server, skopeo.policy, environment)


def try_push(
    skopeo: Skopeo, layout: Path, tag: str, repository: str
) -> subprocess.CompletedProcess[str]:
    return skopeo(
        "copy", "--dest-tls-verify=false", "--preserve-digests",
        f"oci:{layout}:{tag}", skopeo.ref(repository, tag),
        check=False,
    )  # fmt: skip


def try_pull(
    skopeo: Skopeo, repository: str, reference: str, layout: Path
) -> subprocess.CompletedProcess[str]:
    return skopeo(
        "copy", "--src-tls-verify=false", "--preserve-digests",
        skopeo.ref(repository, reference), f"oci:{layout}:pulled",
        check=False,
    )  # fmt: skip


def pushed_image(
    skopeo: Skopeo, folder: Path, repository: str, tag: str = "v1"
) -> tuple[Path, Descriptor]:
    """A fresh tiny image pushed by the root under `tag`."""
    layout = folder / unique("layout")
    descriptor = single_image(layout, tag, seed=unique("seed"))
    skopeo.push(layout, tag, repository, tag)
    return layout, descriptor


def manifest_of(layout: Path, descriptor: Descriptor) -> dict[str, Any]:
    return dict(json.loads(layout_blob(layout, descriptor.digest)))


def layer_digest(layout: Path, descriptor: Descriptor) -> str:
    return str(manifest_of(layout, descriptor)["layers"][0]["digest"])


def denial(response: httpx.Response) -> str:
    """The message of a 403 DENIED answer (and check it is one)."""
    assert response.status_code == 403, response.text
    (error,) = response.json()["errors"]
    assert error["code"] == "DENIED"
    return str(error["message"])


def assert_refused(result: subprocess.CompletedProcess[str]) -> None:
    """skopeo failed because the registry said no: DENIED in a body, or a bare 403 to a HEAD."""
    assert result.returncode != 0
    stderr = result.stderr.lower()
    assert "denied" in stderr or "403 (forbidden)" in stderr, result.stderr


def assert_unauthenticated(result: subprocess.CompletedProcess[str]) -> None:
    """skopeo failed because the registry wanted credentials it did not have."""
    assert result.returncode != 0
    stderr = result.stderr.lower()
    assert "unauthorized" in stderr or "authentication required" in stderr, result.stderr


def assert_challenged(response: httpx.Response, server: EcrdServer) -> None:
    """A 401 with ECR's Basic challenge and the UNAUTHORIZED error code."""
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == CHALLENGE.format(url=server.url)
    if response.request.method != "HEAD":
        assert [e["code"] for e in response.json()["errors"]] == ["UNAUTHORIZED"]


def not_authorized(principal: str, action: str, repository: str, reason: str) -> str:
    return (
        f"User: {principal} is not authorized to perform: {action} on resource: "
        f"{repository_arn(repository)} {reason}"
    )


def no_identity_allow(action: str) -> str:
    return f"because no identity-based policy allows the {action} action"


def no_resource_allow(action: str) -> str:
    return f"because no resource-based policy allows the {action} action"


RESOURCE_DENY = "with an explicit deny in a resource-based policy"


def put_manifest(
    http: httpx.Client, repository: str, tag: str, manifest: bytes, headers: dict[str, str]
) -> httpx.Response:
    return http.put(
        f"/v2/{repository}/manifests/{tag}",
        content=manifest,
        headers={**headers, "Content-Type": OCI_MANIFEST},
    )


@pytest.fixture
def expired_root_token(server: EcrdServer) -> str:
    """A root token signed with the server's own key that expired a minute ago."""
    token, _ = asyncio.run(
        server.token_issuer().issue(ACCOUNT_ID, None, REGION, lifetime=timedelta(minutes=-1))
    )
    SECRETS_USED.append(token)
    return token


# Logging in


def test_anonymous_base_request_gets_ecrs_basic_challenge(
    server: EcrdServer, anonymous: httpx.Client
) -> None:
    # given no credentials at all
    # when GET and HEAD /v2/ are asked
    got = anonymous.get("/v2/")
    head = anonymous.head("/v2/")
    # then both are 401 with exactly ECR's challenge, and the body's code is UNAUTHORIZED
    assert_challenged(got, server)
    assert_challenged(head, server)


def test_root_token_opens_the_base_endpoint(server: EcrdServer, anonymous: httpx.Client) -> None:
    # given the root's registry token, sent as Basic AWS:<token>
    SECRETS_USED.append(server.registry_password())
    # when GET /v2/ is asked with it
    response = anonymous.get("/v2/", headers={"Authorization": f"Basic {basic_login(server)}"})
    # then the registry answers 200
    assert response.status_code == 200
    assert "WWW-Authenticate" not in response.headers


def _foreign_token() -> str:
    """A well-formed token, signed with a key that is not the server's."""
    token, _ = asyncio.run(TokenIssuer.with_secret(b"\x01" * 32).issue(ACCOUNT_ID, None, REGION))
    return token


@pytest.mark.parametrize(
    "make_header",
    [
        pytest.param(lambda token: basic(token + "x"), id="token-with-a-byte-more"),
        pytest.param(lambda token: basic(_foreign_token()), id="token-signed-by-another-key"),
        pytest.param(lambda token: basic("not-a-token"), id="garbage-password"),
        pytest.param(lambda token: basic(""), id="empty-password"),
        pytest.param(lambda token: basic(token, user="root"), id="username-not-AWS"),
        pytest.param(lambda token: basic(token, user="aws"), id="username-lowercase-aws"),
        pytest.param(lambda token: {"Authorization": "Basic !!not*base64!!"}, id="bad-base64"),
        pytest.param(lambda token: {"Authorization": f"Bearer {token}"}, id="bearer-scheme"),
    ],
)
def test_bad_credentials_are_challenged(
    server: EcrdServer, anonymous: httpx.Client, make_header: Any
) -> None:
    # given credentials that are not a valid registry login
    headers = make_header(server.registry_password())
    # when GET /v2/ is asked with them
    response = anonymous.get("/v2/", headers=headers)
    # then it is 401 with the Basic challenge, as for no credentials
    assert_challenged(response, server)


def test_expired_token_is_denied_with_ecrs_message(
    server: EcrdServer, anonymous: httpx.Client, expired_root_token: str
) -> None:
    # given a root token, signed by the server, that has expired
    # when it is used on /v2/ and on a manifest
    base = anonymous.get("/v2/", headers=basic(expired_root_token))
    manifest = anonymous.get(
        f"/v2/{unique('expired')}/manifests/latest", headers=basic(expired_root_token)
    )
    # then both are 403 DENIED with ECR's message
    assert denial(base) == TOKEN_EXPIRED
    assert denial(manifest) == TOKEN_EXPIRED


def test_skopeo_login_accepts_a_fresh_token_and_refuses_garbage(
    server: EcrdServer, skopeo: Skopeo, tmp_path: Path
) -> None:
    # given a fresh password from GetAuthorizationToken, and an empty auth file
    password = registry_token(server, new_key(server))
    good_file = tmp_path / "good.json"
    bad_file = tmp_path / "bad.json"
    for auth_file in (good_file, bad_file):
        auth_file.write_text('{"auths": {}}')

    def login(auth_file: Path, secret: str) -> subprocess.CompletedProcess[str]:
        return skopeo(
            "login", "--tls-verify=false", "--authfile", str(auth_file),
            "--username", "AWS", "--password", secret, server.host,
            check=False,
        )  # fmt: skip

    # when skopeo logs in with it
    good = login(good_file, password)
    # then it succeeds and stores the login for the host
    assert good.returncode == 0, good.stderr
    stored = json.loads(good_file.read_text())["auths"][server.host]["auth"]
    assert base64.b64decode(stored).decode() == f"AWS:{password}"
    # when skopeo logs in with a garbage password
    bad = login(bad_file, "garbage-" + uuid.uuid4().hex)
    # then it fails and stores nothing
    assert bad.returncode != 0
    assert server.host not in json.loads(bad_file.read_text()).get("auths", {})


# Identity policies of the registry's own account


def test_pull_only_user_pulls_but_cannot_push_or_delete(
    server: EcrdServer, skopeo: Skopeo, anonymous: httpx.Client, tmp_path: Path
) -> None:
    # given an image pushed by the root
    repository = unique("auth/pull-only")
    layout, image = pushed_image(skopeo, tmp_path, repository)
    # and a user whose identity policy allows only pulling
    name, key = new_user(server, PULL_ACTIONS)
    password = registry_token(server, key)
    user_skopeo = skopeo_as(skopeo, tmp_path / "user", password)
    # when it pulls the image with skopeo
    copy = tmp_path / "copy"
    user_skopeo.pull(repository, "v1", copy, "v1")
    # then it gets the very manifest and blobs that were pushed
    assert layout_tops(copy)["v1"]["digest"] == image.digest
    assert layout_blobs(copy) == layout_blobs(layout)
    # when it pushes a tag with skopeo
    refused = try_push(user_skopeo, layout, "v1", f"{repository}-copy")
    same_repo = try_push(user_skopeo, layout, "v1", repository)
    # then skopeo fails and says it was denied
    assert_refused(refused)
    assert_refused(same_repo)
    # when it puts a manifest, deletes one or lists tags over HTTP
    manifest = layout_blob(layout, image.digest)
    put = put_manifest(anonymous, repository, "v2", manifest, basic(password))
    deleted = anonymous.delete(
        f"/v2/{repository}/manifests/{image.digest}", headers=basic(password)
    )
    tags = anonymous.get(f"/v2/{repository}/tags/list", headers=basic(password))
    catalog = anonymous.get("/v2/_catalog", headers=basic(password))
    # then each is 403 DENIED naming the user, the action and the repository
    principal = user_arn(name)
    for response, action in [
        (put, "ecr:PutImage"),
        (deleted, "ecr:BatchDeleteImage"),
        (tags, "ecr:ListImages"),
    ]:
        assert denial(response) == not_authorized(
            principal, action, repository, no_identity_allow(action)
        )
    # and the catalog, which acts on every repository, is denied as DescribeRepositories
    assert denial(catalog) == not_authorized(
        principal, "ecr:DescribeRepositories", "*", no_identity_allow("ecr:DescribeRepositories")
    )
    # and the repository still holds the image, with no new tag
    assert server.ecr().list_images(repositoryName=repository)["imageIds"] == [
        {"imageDigest": image.digest, "imageTag": "v1"}
    ]


def test_push_only_user_pushes_but_cannot_pull(
    server: EcrdServer, skopeo: Skopeo, anonymous: httpx.Client, tmp_path: Path
) -> None:
    # given an existing repository and a user allowed only to push
    repository = unique("auth/push-only")
    server.ecr().create_repository(repositoryName=repository)
    name, key = new_user(server, PUSH_ACTIONS)
    password = registry_token(server, key)
    user_skopeo = skopeo_as(skopeo, tmp_path / "user", password)
    # when it pushes an image with skopeo
    layout = tmp_path / "source"
    image = single_image(layout, "v1", seed=unique("push-only"))
    user_skopeo.push(layout, "v1", repository, "v1")
    # then the registry holds it under the tag
    (detail,) = server.ecr().describe_images(repositoryName=repository)["imageDetails"]
    assert (detail["imageDigest"], detail["imageTags"]) == (image.digest, ["v1"])
    # when it pulls the image back
    pulled = try_pull(user_skopeo, repository, "v1", tmp_path / "copy")
    # then skopeo fails
    assert_refused(pulled)
    # and over HTTP the manifest and the layer are 403 DENIED for their actions
    manifest = anonymous.get(
        f"/v2/{repository}/manifests/v1", headers={**basic(password), "Accept": MANIFEST_ACCEPT}
    )
    blob = anonymous.get(
        f"/v2/{repository}/blobs/{layer_digest(layout, image)}", headers=basic(password)
    )
    assert denial(manifest) == not_authorized(
        user_arn(name), "ecr:BatchGetImage", repository, no_identity_allow("ecr:BatchGetImage")
    )
    assert denial(blob) == not_authorized(
        user_arn(name),
        "ecr:GetDownloadUrlForLayer",
        repository,
        no_identity_allow("ecr:GetDownloadUrlForLayer"),
    )
    # and so are the image's referrers, which are read as the image is
    referrers = anonymous.get(f"/v2/{repository}/referrers/{image.digest}", headers=basic(password))
    assert denial(referrers) == not_authorized(
        user_arn(name), "ecr:BatchGetImage", repository, no_identity_allow("ecr:BatchGetImage")
    )
    # but a HEAD on the layer (a pusher's check) is allowed
    head = anonymous.head(
        f"/v2/{repository}/blobs/{layer_digest(layout, image)}", headers=basic(password)
    )
    assert head.status_code == 200


def test_resource_scoped_user_pushes_only_under_its_prefix(
    server: EcrdServer, skopeo: Skopeo, anonymous: httpx.Client, tmp_path: Path
) -> None:
    # given a user allowed to push (and create) only under <prefix>/team-a/*
    prefix = unique("auth")
    resource = repository_arn(f"{prefix}/team-a/*")
    name, key = new_user(server, [*PUSH_ACTIONS, "ecr:CreateRepository"], resource)
    password = registry_token(server, key)
    user_skopeo = skopeo_as(skopeo, tmp_path / "user", password)
    layout = tmp_path / "source"
    image = single_image(layout, "v1", seed=unique("scoped"))
    # when it pushes to team-a/x
    user_skopeo.push(layout, "v1", f"{prefix}/team-a/x", "v1")
    # then the image is there (in a repository the push created)
    assert manifest_digest(server.http(), f"{prefix}/team-a/x", "v1") == image.digest
    # when it pushes to team-b/x
    refused = try_push(user_skopeo, layout, "v1", f"{prefix}/team-b/x")
    # then skopeo fails, and no repository was created
    assert_refused(refused)
    with pytest.raises(ClientError) as missing:
        server.ecr().describe_repositories(repositoryNames=[f"{prefix}/team-b/x"])
    assert missing.value.response["Error"]["Code"] == "RepositoryNotFoundException"
    # and over HTTP the upload start is denied for the team-b repository
    started = anonymous.post(f"/v2/{prefix}/team-b/x/blobs/uploads/", headers=basic(password))
    assert denial(started) == not_authorized(
        user_arn(name),
        "ecr:InitiateLayerUpload",
        f"{prefix}/team-b/x",
        no_identity_allow("ecr:InitiateLayerUpload"),
    )


def test_push_into_a_new_repository_also_needs_create_repository(
    server: EcrdServer, skopeo: Skopeo, anonymous: httpx.Client, tmp_path: Path
) -> None:
    # given a user allowed every push action but not ecr:CreateRepository
    name, key = new_user(server, PUSH_ACTIONS)
    password = registry_token(server, key)
    user_skopeo = skopeo_as(skopeo, tmp_path / "user", password)
    layout = tmp_path / "source"
    image = single_image(layout, "v1", seed=unique("create"))
    repository = unique("auth/new")
    # when it pushes into a repository that does not exist
    refused = try_push(user_skopeo, layout, "v1", repository)
    started = anonymous.post(f"/v2/{repository}/blobs/uploads/", headers=basic(password))
    # then both are denied, for ecr:CreateRepository, and nothing is created
    assert_refused(refused)
    assert denial(started) == not_authorized(
        user_arn(name),
        "ecr:CreateRepository",
        repository,
        no_identity_allow("ecr:CreateRepository"),
    )
    with pytest.raises(ClientError) as missing:
        server.ecr().describe_repositories(repositoryNames=[repository])
    assert missing.value.response["Error"]["Code"] == "RepositoryNotFoundException"
    # when the root creates the repository and the user pushes again
    server.ecr().create_repository(repositoryName=repository)
    user_skopeo.push(layout, "v1", repository, "v1")
    # then the push succeeds
    assert manifest_digest(server.http(), repository, "v1") == image.digest


# Across accounts


def test_other_account_pulls_only_once_the_repository_policy_grants_it(
    server: EcrdServer, skopeo: Skopeo, anonymous: httpx.Client, tmp_path: Path
) -> None:
    # given an image in the default registry, and the root of another account
    repository = unique("auth/cross")
    layout, image = pushed_image(skopeo, tmp_path, repository)
    password = registry_token(server, new_key(server, OTHER_ACCOUNT_ID))
    other = skopeo_as(skopeo, tmp_path / "other", password)
    other_root = f"arn:aws:iam::{OTHER_ACCOUNT_ID}:root"
    # when it pulls before any policy names it
    refused = try_pull(other, repository, "v1", tmp_path / "refused")
    manifest = anonymous.get(
        f"/v2/{repository}/manifests/v1", headers={**basic(password), "Accept": MANIFEST_ACCEPT}
    )
    # then it is denied: no resource policy lets another account in
    assert_refused(refused)
    assert denial(manifest) == not_authorized(
        other_root, "ecr:BatchGetImage", repository, no_resource_allow("ecr:BatchGetImage")
    )
    # when the registry's root grants the other account the pull actions
    server.ecr().set_repository_policy(
        repositoryName=repository,
        policyText=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "CrossAccountPull",
                        "Effect": "Allow",
                        "Principal": {"AWS": other_root},
                        "Action": PULL_ACTIONS,
                    }
                ],
            }
        ),
    )
    # then skopeo pulls with the other account's token, digests intact
    copy = tmp_path / "copy"
    other.pull(repository, "v1", copy, "v1")
    assert layout_tops(copy)["v1"]["digest"] == image.digest
    assert layout_blobs(copy) == layout_blobs(layout)
    # and pushing is still denied
    pushed = try_push(other, layout, "v1", repository)
    assert_refused(pushed)
    put = put_manifest(
        anonymous, repository, "v2", layout_blob(layout, image.digest), basic(password)
    )
    assert denial(put) == not_authorized(
        other_root, "ecr:PutImage", repository, no_resource_allow("ecr:PutImage")
    )


def test_other_accounts_user_needs_its_own_identity_allow_too(
    server: EcrdServer, skopeo: Skopeo, anonymous: httpx.Client, tmp_path: Path
) -> None:
    # given a repository whose policy grants the other account pulls
    repository = unique("auth/cross-user")
    _, image = pushed_image(skopeo, tmp_path, repository)
    server.ecr().set_repository_policy(
        repositoryName=repository,
        policyText=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"AWS": f"arn:aws:iam::{OTHER_ACCOUNT_ID}:root"},
                        "Action": PULL_ACTIONS,
                    }
                ],
            }
        ),
    )
    # and a user of that account whose own policy allows only GetAuthorizationToken
    name = unique("user")
    key = new_key(server, OTHER_ACCOUNT_ID, name, [identity_policy(["ecr:DescribeImages"])])
    password = registry_token(server, key)
    # when it asks for the manifest
    response = anonymous.get(
        f"/v2/{repository}/manifests/v1", headers={**basic(password), "Accept": MANIFEST_ACCEPT}
    )
    # then it is denied: across accounts both sides must allow
    assert denial(response) == not_authorized(
        user_arn(name, OTHER_ACCOUNT_ID),
        "ecr:BatchGetImage",
        repository,
        no_identity_allow("ecr:BatchGetImage"),
    )
    # when a user of that account whose own policy allows pulling asks
    puller = new_key(server, OTHER_ACCOUNT_ID, unique("user"), [identity_policy(PULL_ACTIONS)])
    allowed = anonymous.get(
        f"/v2/{repository}/manifests/v1",
        headers={**basic(registry_token(server, puller)), "Accept": MANIFEST_ACCEPT},
    )
    # then it gets the manifest
    assert allowed.status_code == 200, allowed.text
    assert allowed.headers["Docker-Content-Digest"] == image.digest


def test_same_account_user_is_let_in_by_a_policy_naming_it_not_one_naming_its_account(
    server: EcrdServer, skopeo: Skopeo, anonymous: httpx.Client, tmp_path: Path
) -> None:
    # given an image, and a user of the same account with no pull permission of its own
    repository = unique("auth/same-account")
    layout, image = pushed_image(skopeo, tmp_path, repository)
    name, key = new_user(server, ["ecr:DescribeImages"])
    password = registry_token(server, key)
    user_skopeo = skopeo_as(skopeo, tmp_path / "user", password)

    def grant(principal: str) -> None:
        statement = {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": PULL_ACTIONS}
        server.ecr().set_repository_policy(
            repositoryName=repository,
            policyText=json.dumps({"Version": "2012-10-17", "Statement": [statement]}),
        )

    def get_manifest() -> httpx.Response:
        return anonymous.get(
            f"/v2/{repository}/manifests/v1",
            headers={**basic(password), "Accept": MANIFEST_ACCEPT},
        )

    # when the repository policy grants the pull actions to the account's root
    grant(f"arn:aws:iam::{ACCOUNT_ID}:root")
    # then the user is still denied: naming the account leaves the decision to its IAM
    assert denial(get_manifest()) == not_authorized(
        user_arn(name), "ecr:BatchGetImage", repository, no_identity_allow("ecr:BatchGetImage")
    )
    # when the policy names the user itself
    grant(user_arn(name))
    # then it pulls, with skopeo and over HTTP
    assert get_manifest().content == layout_blob(layout, image.digest)
    copy = tmp_path / "copy"
    user_skopeo.pull(repository, "v1", copy, "v1")
    assert layout_tops(copy)["v1"]["digest"] == image.digest


# Explicit denies


def test_repository_policy_deny_beats_the_users_identity_allow(
    server: EcrdServer, skopeo: Skopeo, anonymous: httpx.Client, tmp_path: Path
) -> None:
    # given an image, and a user whose identity policy allows pulling
    repository = unique("auth/deny")
    layout, image = pushed_image(skopeo, tmp_path, repository)
    name, key = new_user(server, PULL_ACTIONS)
    password = registry_token(server, key)
    user_skopeo = skopeo_as(skopeo, tmp_path / "user", password)
    # and a repository policy that denies it ecr:BatchGetImage
    server.ecr().set_repository_policy(
        repositoryName=repository,
        policyText=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Deny",
                        "Principal": {"AWS": user_arn(name)},
                        "Action": "ecr:BatchGetImage",
                    }
                ],
            }
        ),
    )
    # when it pulls
    refused = try_pull(user_skopeo, repository, "v1", tmp_path / "copy")
    manifest = anonymous.get(
        f"/v2/{repository}/manifests/v1", headers={**basic(password), "Accept": MANIFEST_ACCEPT}
    )
    # then the deny wins
    assert_refused(refused)
    assert denial(manifest) == not_authorized(
        user_arn(name), "ecr:BatchGetImage", repository, RESOURCE_DENY
    )
    # but the actions the policy does not deny are still allowed
    blob = anonymous.get(
        f"/v2/{repository}/blobs/{layer_digest(layout, image)}", headers=basic(password)
    )
    assert blob.status_code == 200
    assert blob.content == layout_blob(layout, layer_digest(layout, image))


def test_registry_policy_deny_stops_even_the_roots_push(
    own_server: EcrdServer, skopeo: Skopeo, tmp_path: Path
) -> None:
    # given a server of its own, with an image its root pushed
    password = own_server.registry_password()
    SECRETS_USED.append(password)
    root = skopeo_as(skopeo, tmp_path / "root", password, own_server)
    repository = unique("auth/registry-deny")
    layout, image = pushed_image(root, tmp_path, repository)
    # and a registry policy denying ecr:PutImage to everyone
    ecr = own_server.ecr()
    ecr.put_registry_policy(
        policyText=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "NoPushes",
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "ecr:PutImage",
                        "Resource": repository_arn("*"),
                    }
                ],
            }
        )
    )
    manifest = layout_blob(layout, image.digest)
    with httpx.Client(base_url=own_server.url, timeout=30) as http:
        # when the root pushes another tag
        refused = try_push(root, layout, "v1", f"{repository}-second")
        put = put_manifest(http, repository, "v2", manifest, basic(password))
        # then skopeo fails and HTTP says 403 DENIED by a resource-based policy
        assert_refused(refused)
        assert denial(put) == not_authorized(
            f"arn:aws:iam::{ACCOUNT_ID}:root", "ecr:PutImage", repository, RESOURCE_DENY
        )
        # and pulls are unaffected
        root.pull(repository, "v1", tmp_path / "copy", "v1")
        # when the registry policy is deleted
        ecr.delete_registry_policy()
        # then the root pushes again
        again = put_manifest(http, repository, "v2", manifest, basic(password))
        assert again.status_code == 201, again.text
        assert again.headers["Docker-Content-Digest"] == image.digest


def test_repository_policy_conditions_see_the_data_plane_request(
    server: EcrdServer, skopeo: Skopeo, anonymous: httpx.Client, tmp_path: Path
) -> None:
    # given an image in a repository whose policy denies pulls over plain HTTP (only pulls,
    # so that the policy can still be changed over this plain-HTTP API)
    repository = unique("auth/tls-only")
    layout, image = pushed_image(skopeo, tmp_path, repository)
    statements = [
        {
            "Sid": "TlsOnly",
            "Effect": "Deny",
            "Principal": "*",
            "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    ]
    server.ecr().set_repository_policy(
        repositoryName=repository,
        policyText=json.dumps({"Version": "2012-10-17", "Statement": statements}),
    )
    root_headers = {"Authorization": f"Basic {basic_login(server)}", "Accept": MANIFEST_ACCEPT}
    # when the root pulls over this plain-HTTP server
    refused = anonymous.get(f"/v2/{repository}/manifests/v1", headers=root_headers)
    # then the deny applies to it
    assert denial(refused) == not_authorized(
        f"arn:aws:iam::{ACCOUNT_ID}:root", "ecr:BatchGetImage", repository, RESOURCE_DENY
    )
    # when the policy instead lets everyone pull from the loopback address only
    statements = [
        {
            "Effect": "Allow",
            "Principal": "*",
            "Action": PULL_ACTIONS,
            "Condition": {"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}},
        }
    ]
    server.ecr().set_repository_policy(
        repositoryName=repository,
        policyText=json.dumps({"Version": "2012-10-17", "Statement": statements}),
    )
    # then an anonymous caller on 127.0.0.1 pulls
    manifest = anonymous.get(f"/v2/{repository}/manifests/v1", headers={"Accept": MANIFEST_ACCEPT})
    assert manifest.status_code == 200
    assert manifest.content == layout_blob(layout, image.digest)
    # when the allowed range is one the caller is not in
    statements[0]["Condition"] = {"IpAddress": {"aws:SourceIp": "192.0.2.0/24"}}
    server.ecr().set_repository_policy(
        repositoryName=repository,
        policyText=json.dumps({"Version": "2012-10-17", "Statement": statements}),
    )
    # then the anonymous pull is challenged
    outside = anonymous.get(f"/v2/{repository}/manifests/v1", headers={"Accept": MANIFEST_ACCEPT})
    assert_challenged(outside, server)


# Anonymous access


def test_repository_open_to_everyone_is_pulled_without_credentials(
    server: EcrdServer, skopeo: Skopeo, anonymous: httpx.Client, tmp_path: Path
) -> None:
    # given a repository whose policy grants everyone the pull actions
    public = unique("auth/public")
    layout, image = pushed_image(skopeo, tmp_path, public)
    server.ecr().set_repository_policy(
        repositoryName=public,
        policyText=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": "*", "Action": PULL_ACTIONS}],
            }
        ),
    )
    # and another repository without such a policy
    private = unique("auth/private")
    pushed_image(skopeo, tmp_path, private)
    nobody = skopeo_as(skopeo, tmp_path / "nobody", None)
    # when skopeo pulls the open one with no login at all
    copy = tmp_path / "copy"
    nobody.pull(public, "v1", copy, "v1")
    # then it gets the image, digests intact
    assert layout_tops(copy)["v1"]["digest"] == image.digest
    assert layout_blobs(copy) == layout_blobs(layout)
    # and plain HTTP without Authorization gets the manifest and the layer
    manifest = anonymous.get(f"/v2/{public}/manifests/v1", headers={"Accept": MANIFEST_ACCEPT})
    assert manifest.status_code == 200
    assert manifest.content == layout_blob(layout, image.digest)
    layer = layer_digest(layout, image)
    blob = anonymous.get(f"/v2/{public}/blobs/{layer}")
    assert blob.status_code == 200
    assert blob.content == layout_blob(layout, layer)
    # and so does the empty Basic login clients send when they have none
    empty = anonymous.get(f"/v2/{public}/blobs/{layer}", headers={"Authorization": "Basic Og=="})
    assert empty.status_code == 200
    # but a push into it, or listing its tags, is challenged
    assert_unauthenticated(try_push(nobody, layout, "v1", public))
    assert_challenged(anonymous.post(f"/v2/{public}/blobs/uploads/"), server)
    put = put_manifest(anonymous, public, "v2", layout_blob(layout, image.digest), {})
    assert_challenged(put, server)
    assert_challenged(anonymous.get(f"/v2/{public}/tags/list"), server)
    # and the other repository is challenged for pulls too
    assert_unauthenticated(try_pull(nobody, private, "v1", tmp_path / "private"))
    private_manifest = anonymous.get(
        f"/v2/{private}/manifests/v1", headers={"Accept": MANIFEST_ACCEPT}
    )
    assert_challenged(private_manifest, server)
    empty_private = anonymous.get(
        f"/v2/{private}/manifests/v1",
        headers={"Accept": MANIFEST_ACCEPT, "Authorization": "Basic Og=="},
    )
    assert_challenged(empty_private, server)
    head_private = anonymous.head(
        f"/v2/{private}/manifests/v1", headers={"Accept": MANIFEST_ACCEPT}
    )
    assert_challenged(head_private, server)


# Presigned download URLs


def _signed_url(server: EcrdServer, path: str, expires: int) -> str:
    """A download URL for `path` signed with the server's own key (to test the expiry)."""
    generation, key = server.signing_key()
    signature = hmac.new(key, f"{path}\n{expires}".encode(), hashlib.sha256).digest()
    encoded = base64.urlsafe_b64encode(signature).rstrip(b"=").decode()
    return f"{server.url}{path}?" + urlencode(
        {"X-Ecrd-Expires": expires, "X-Ecrd-Signature": f"{generation}.{encoded}"}
    )


# ecrd's own download URLs: with S3, GetDownloadUrlForLayer hands out S3's.
@pytest.mark.filesystem_blobs
def test_presigned_download_url_works_without_credentials_and_only_as_issued(
    server: EcrdServer, skopeo: Skopeo, tmp_path: Path
) -> None:
    # given an image, and the download URL GetDownloadUrlForLayer gives for its layer
    repository = unique("auth/presigned")
    layout, image = pushed_image(skopeo, tmp_path, repository)
    layer = layer_digest(layout, image)
    config = str(manifest_of(layout, image)["config"]["digest"])
    answer = server.ecr().get_download_url_for_layer(repositoryName=repository, layerDigest=layer)
    url = answer["downloadUrl"]
    assert answer["layerDigest"] == layer
    assert url.startswith(f"{server.url}/v2/{repository}/blobs/{layer}?")
    parts = urlsplit(url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    base = f"{parts.scheme}://{parts.netloc}{parts.path}"
    with httpx.Client(timeout=30) as plain:
        # when it is fetched with no credentials
        fetched = plain.get(url)
        # then it is the layer, byte for byte
        assert fetched.status_code == 200, fetched.text
        assert fetched.content == layout_blob(layout, layer)
        # when its signature is altered, or its expiry moved
        signature = query["X-Ecrd-Signature"]
        flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
        altered = plain.get(base, params={**query, "X-Ecrd-Signature": flipped})
        later = plain.get(
            base, params={**query, "X-Ecrd-Expires": str(int(query["X-Ecrd-Expires"]) + 1)}
        )
        unsigned = plain.get(base, params={"X-Ecrd-Expires": query["X-Ecrd-Expires"]})
        # then each is challenged
        for response in (altered, later, unsigned):
            assert_challenged(response, server)
        # when the same signature is used for another blob's path
        other_blob = plain.get(f"{server.url}/v2/{repository}/blobs/{config}", params=query)
        # then it is challenged too
        assert_challenged(other_blob, server)
        # when a URL correctly signed by the server's key has expired
        expired = plain.get(_signed_url(server, parts.path, int(query["X-Ecrd-Expires"]) - 7200))
        # then it is challenged, while the same signing for a future expiry works
        assert_challenged(expired, server)
        fresh = plain.get(_signed_url(server, parts.path, int(query["X-Ecrd-Expires"]) + 60))
        assert fresh.status_code == 200
        assert fresh.content == layout_blob(layout, layer)


# Cross-repository mounts


def test_mount_from_a_repository_the_caller_cannot_read_is_a_plain_upload(
    server: EcrdServer, skopeo: Skopeo, anonymous: httpx.Client, tmp_path: Path
) -> None:
    # given an image in a source repository, and an empty destination repository
    prefix = unique("auth/mount")
    source, destination = f"{prefix}/source", f"{prefix}/destination"
    layout, image = pushed_image(skopeo, tmp_path, source)
    layer = layer_digest(layout, image)
    server.ecr().create_repository(repositoryName=destination)
    # and a user allowed to push to the destination only
    _, key = new_user(server, PUSH_ACTIONS, repository_arn(destination))
    password = registry_token(server, key)
    mount = f"/v2/{destination}/blobs/uploads/?mount={layer}&from={source}"
    # when it asks to mount the layer from the source
    response = anonymous.post(mount, headers=basic(password))
    # then it gets an upload session instead of the blob
    assert response.status_code == 202, response.text
    assert response.headers["Location"].startswith(f"/v2/{destination}/blobs/uploads/")
    assert "Docker-Content-Digest" not in response.headers
    # and the destination does not have the layer
    root_headers = {"Authorization": f"Basic {basic_login(server)}"}
    assert (
        anonymous.head(f"/v2/{destination}/blobs/{layer}", headers=root_headers).status_code == 404
    )
    # when the root asks for the same mount
    mounted = anonymous.post(mount, headers=root_headers)
    # then the blob is mounted: 201 naming it
    assert mounted.status_code == 201, mounted.text
    assert mounted.headers["Location"] == f"/v2/{destination}/blobs/{layer}"
    assert mounted.headers["Docker-Content-Digest"] == layer
    got = anonymous.get(f"/v2/{destination}/blobs/{layer}", headers=root_headers)
    assert got.content == layout_blob(layout, layer)


def test_mount_by_a_user_who_may_read_the_source_is_created(
    server: EcrdServer, skopeo: Skopeo, anonymous: httpx.Client, tmp_path: Path
) -> None:
    # given an image in a source repository, an empty destination, and a user allowed to
    # pull from the source and push to the destination
    prefix = unique("auth/mount-ok")
    source, destination = f"{prefix}/source", f"{prefix}/destination"
    layout, image = pushed_image(skopeo, tmp_path, source)
    layer = layer_digest(layout, image)
    server.ecr().create_repository(repositoryName=destination)
    name = unique("user")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": PULL_ACTIONS, "Resource": repository_arn(source)},
            {"Effect": "Allow", "Action": PUSH_ACTIONS, "Resource": repository_arn(destination)},
            {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
        ],
    }
    password = registry_token(server, new_key(server, user=name, policies=[policy]))
    # when it mounts the layer
    response = anonymous.post(
        f"/v2/{destination}/blobs/uploads/?mount={layer}&from={source}", headers=basic(password)
    )
    # then the blob is mounted
    assert response.status_code == 201, response.text
    assert response.headers["Docker-Content-Digest"] == layer


# Upload sessions


def test_upload_session_cannot_be_used_through_another_repository(
    server: EcrdServer, anonymous: httpx.Client
) -> None:
    # given an upload the root started in one repository
    prefix = unique("auth/upload")
    theirs, mine = f"{prefix}/theirs", f"{prefix}/mine"
    for repository in (theirs, mine):
        server.ecr().create_repository(repositoryName=repository)
    root_headers = {"Authorization": f"Basic {basic_login(server)}"}
    started = anonymous.post(f"/v2/{theirs}/blobs/uploads/", headers=root_headers)
    assert started.status_code == 202, started.text
    upload_id = started.headers["Docker-Upload-UUID"]
    # and a user allowed to push to another repository only
    name, key = new_user(server, PUSH_ACTIONS, repository_arn(mine))
    password = registry_token(server, key)
    data = b"not yours"
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    # when it writes to that upload through its own repository
    through_mine = anonymous.put(
        f"/v2/{mine}/blobs/uploads/{upload_id}",
        params={"digest": digest},
        content=data,
        headers={**basic(password), "Content-Type": "application/octet-stream"},
    )
    # then the upload is unknown there
    assert through_mine.status_code == 404, through_mine.text
    assert [e["code"] for e in through_mine.json()["errors"]] == ["BLOB_UPLOAD_UNKNOWN"]
    # when it writes to it through the repository it belongs to
    through_theirs = anonymous.patch(
        f"/v2/{theirs}/blobs/uploads/{upload_id}", content=data, headers=basic(password)
    )
    # then it is denied ecr:UploadLayerPart there
    assert denial(through_theirs) == not_authorized(
        user_arn(name), "ecr:UploadLayerPart", theirs, no_identity_allow("ecr:UploadLayerPart")
    )
    # and the root's upload is untouched: still empty
    status = anonymous.get(f"/v2/{theirs}/blobs/uploads/{upload_id}", headers=root_headers)
    assert status.status_code == 204
    assert status.headers["Range"] == "0-0"
    assert anonymous.head(f"/v2/{mine}/blobs/{digest}", headers=root_headers).status_code == 404


@pytest.mark.parametrize("way", ["monolithic-post", "put-with-body"])
def test_uploading_layer_bytes_needs_upload_layer_part(
    server: EcrdServer, anonymous: httpx.Client, way: str
) -> None:
    # given a repository, and a user allowed to start and complete uploads there, but not to
    # upload any part (through the API it could not send a single byte)
    repository = unique("auth/no-parts")
    server.ecr().create_repository(repositoryName=repository)
    name, key = new_user(
        server,
        ["ecr:InitiateLayerUpload", "ecr:CompleteLayerUpload", "ecr:BatchCheckLayerAvailability"],
        repository_arn(repository),
    )
    headers = {**basic(registry_token(server, key)), "Content-Type": "application/octet-stream"}
    data = f"layer bytes {uuid.uuid4()}".encode()
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    # when it sends a whole layer in the upload's first or last request
    if way == "monolithic-post":
        response = anonymous.post(
            f"/v2/{repository}/blobs/uploads/", params={"digest": digest}, content=data,
            headers=headers,
        )  # fmt: skip
    else:
        started = anonymous.post(f"/v2/{repository}/blobs/uploads/", headers=headers)
        assert started.status_code == 202, started.text
        response = anonymous.put(
            started.headers["Location"], params={"digest": digest}, content=data, headers=headers
        )
    # then no layer is created from those bytes
    assert response.status_code != 201, response.headers
    layers = server.ecr().batch_check_layer_availability(
        repositoryName=repository, layerDigests=[digest]
    )
    assert layers["layers"] == []


# Keys and logs


def _delete_key(server: EcrdServer, key: AccessKeyPair) -> None:
    deleted = subprocess.run(
        [
            sys.executable, "-m", "ecrd", "keys", "delete", key.access_key_id,
            *server.store_arguments(),
        ],
        capture_output=True, text=True, timeout=60, env=clean_environment(),
    )  # fmt: skip
    assert deleted.returncode == 0, deleted.stderr


def test_token_stops_working_when_the_users_last_key_is_deleted(
    server: EcrdServer, anonymous: httpx.Client
) -> None:
    # given a user with two keys, and a token got with the first
    name, first = new_user(server, PULL_ACTIONS)
    second = new_key(server, user=name, policies=[identity_policy(PULL_ACTIONS)])
    password = registry_token(server, first)
    assert anonymous.get("/v2/", headers=basic(password)).status_code == 200
    # when the key the token was got with is deleted
    _delete_key(server, first)
    # then the token still works: the user still exists
    assert anonymous.get("/v2/", headers=basic(password)).status_code == 200
    # when the user's last key is deleted
    _delete_key(server, second)
    # then the next request with the token is challenged
    assert_challenged(anonymous.get("/v2/", headers=basic(password)), server)
    assert_challenged(
        anonymous.get(f"/v2/{unique('gone')}/manifests/v1", headers=basic(password)), server
    )


# ecrd's own download URLs: with S3, GetDownloadUrlForLayer hands out S3's.
@pytest.mark.filesystem_blobs
def test_no_secret_or_token_reaches_a_debug_log(skopeo: Skopeo, tmp_path: Path) -> None:
    # given a server of its own logging at debug level (every request is logged)
    debug = EcrdServer(tmp_path / "data", environment={"ECRD_LOG_LEVEL": "debug"})
    try:
        debug.start()
        # and the flows that carry secrets: a user's key signing API calls, its registry
        # token used by skopeo to push and pull, bad and expired logins, a download URL's
        # signature
        name, key = new_user(debug, [*PUSH_ACTIONS, *PULL_ACTIONS, "ecr:CreateRepository"])
        password = registry_token(debug, key)
        root_password = debug.registry_password()
        user_skopeo = skopeo_as(skopeo, tmp_path / "user", password, debug)
        repository = unique("auth/logged")
        layout, image = pushed_image(user_skopeo, tmp_path, repository)
        user_skopeo.pull(repository, "v1", tmp_path / "copy", "v1")
        expired, _ = asyncio.run(
            debug.token_issuer().issue(ACCOUNT_ID, name, REGION, lifetime=timedelta(minutes=-1))
        )
        garbage = "garbage-" + uuid.uuid4().hex
        with httpx.Client(base_url=debug.url, timeout=30) as http:
            assert http.get("/v2/", headers=basic(root_password)).status_code == 200
            assert http.get("/v2/", headers=basic(expired)).status_code == 403
            assert http.get("/v2/", headers=basic(garbage)).status_code == 401
            assert http.get("/v2/", headers=basic(password, user="root")).status_code == 401
        url = debug.ecr_as(key).get_download_url_for_layer(
            repositoryName=repository, layerDigest=layer_digest(layout, image)
        )["downloadUrl"]
        assert httpx.get(url, timeout=30).status_code == 200
    finally:
        debug.stop()
    # when its log is read
    log = debug.log_path.read_text(errors="replace")
    # then it did log the requests
    assert f"/v2/{repository}/manifests/v1" in log
    # and none of the secrets, passwords or URL signatures is in it
    secrets = [ROOT_SECRET_ACCESS_KEY, key.secret_access_key, password, root_password, expired]
    secrets += [garbage, parse_qs(urlsplit(url).query)["X-Ecrd-Signature"][0]]
    assert [secret[:8] + "..." for secret in secrets if secret in log] == []


def test_no_secret_or_token_reaches_the_server_log(server: EcrdServer) -> None:
    # given the flows above, which used these secrets and registry passwords
    secrets = [ROOT_SECRET_ACCESS_KEY, server.registry_password(), *SECRETS_USED]
    # when the server's log is read
    log = server.log_path.read_text(errors="replace")
    # then none of them is in it
    leaked = [secret[:8] + "..." for secret in secrets if secret in log]
    assert leaked == []


def test_a_user_made_again_under_the_same_name_does_not_inherit_old_tokens(
    server: EcrdServer, anonymous: httpx.Client
) -> None:
    # given a user's token, and the user deleted with its only key
    name, first = new_user(server, PULL_ACTIONS)
    old_password = registry_token(server, first)
    _delete_key(server, first)
    # when a user of the same name is made again
    again = new_key(server, user=name, policies=[identity_policy(PULL_ACTIONS)])
    # then the old user's token is still refused (on AWS the new user is another identity)
    assert_challenged(anonymous.get("/v2/", headers=basic(old_password)), server)
    # while the new user's own token works
    assert anonymous.get("/v2/", headers=basic(registry_token(server, again))).status_code == 200
