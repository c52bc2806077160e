"""What a client can send to the API that once answered 500: each gets a modeled 4xx.

Bodies nested 100,000 deep or holding numbers of thousands of digits or past 64 bits,
forged pagination tokens, policy texts no parser should follow, non-ASCII in a signature or
a payload hash, and calls naming registries that nobody may write to (which must not create
them).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.api_errors import expect_error
from tests.conftest import (
    REGION,
    ROOT_ACCESS_KEY_ID,
    ROOT_SECRET_ACCESS_KEY,
    EcrdServer,
)

TARGET = "AmazonEC2ContainerRegistry_V20150921"
DEEP = 100_000
HUGE_DIGITS = "9" * 5000


def call(client: httpx.Client, operation: str, body: bytes) -> httpx.Response:
    return client.post(
        "/",
        content=body,
        headers={
            "X-Amz-Target": f"{TARGET}.{operation}",
            "Content-Type": "application/x-amz-json-1.1",
        },
    )


def error_type(response: httpx.Response) -> str:
    assert 400 <= response.status_code < 500, response.text
    return str(response.json()["__type"])


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[" * DEEP + b"]" * DEEP, id="arrays-100000-deep"),
        pytest.param(b'{"repositoryNames":' + b"[" * DEEP + b"]" * DEEP + b"}", id="member-deep"),
        pytest.param(b'{"maxResults":' + HUGE_DIGITS.encode() + b"}", id="5000-digits"),
        pytest.param(b'{"maxResults":' + str(2**70).encode() + b"}", id="2**70"),
        pytest.param(b'{"maxResults":NaN}', id="NaN"),
        pytest.param(b'{"repositoryNames":["\xff"]}', id="not-utf-8"),
    ],
)
def test_a_body_no_parser_should_follow_is_a_serialization_error(
    client: httpx.Client, body: bytes
) -> None:
    assert error_type(call(client, "DescribeRepositories", body)) == "SerializationException"


def test_a_number_past_the_members_range_is_invalid_parameter(client: httpx.Client) -> None:
    # 2**40 fits the wire (64 bits) but not maxResults (1 to 1000)
    body = json.dumps({"maxResults": 2**40}).encode()
    response = call(client, "DescribeRepositories", body)
    assert error_type(response) == "InvalidParameterException"
    assert "maxResults" in response.json()["message"]


def token(*parts: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode()


def raw_token(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    "next_token",
    [
        pytest.param(raw_token("[" * DEEP + "]" * DEEP), id="deep"),
        pytest.param(raw_token('["DescribeRepositories:1",' + HUGE_DIGITS + "]"), id="digits"),
        pytest.param(token("DescribeRepositories:1", {"name": "x"}), id="key-an-object"),
        pytest.param(token("DescribeRepositories:1", 5), id="key-a-number"),
        pytest.param(token("DescribeRepositories:1"), id="no-key"),
        pytest.param("not base64 at all ✗", id="not-base64"),
    ],
)
def test_a_forged_pagination_token_is_invalid_parameter(
    server: EcrdServer, client: httpx.Client, next_token: str
) -> None:
    # given a registry with a repository, so its scope (registry id) exists
    server.ecr().create_repository(repositoryName=f"hostile/page-{abs(hash(next_token))}")
    body = json.dumps({"maxResults": 1, "nextToken": next_token}).encode()
    assert error_type(call(client, "DescribeRepositories", body)) == "InvalidParameterException"


@pytest.mark.parametrize(
    "key",
    [pytest.param("x", id="a-string"), pytest.param([1], id="a-short-list")],
)
def test_a_forged_image_page_token_is_invalid_parameter(
    server: EcrdServer, repository_name: str, key: Any
) -> None:
    # given a repository, and its id (a token's scope names it, and ids can be guessed)
    ecr = server.ecr()
    ecr.create_repository(repositoryName=repository_name)
    rows = server.metadata_query(
        "SELECT id FROM repositories WHERE name = :name", name=repository_name
    )
    repository_id = rows[0][0]
    # when a token with the right scope but a key of the wrong shape is sent
    for operation, scope in (
        ("list_images", f"ListImages:{repository_id}:ANY"),
        ("describe_images", f"DescribeImages:{repository_id}:ANY"),
    ):
        # then it is refused as a bad token, not a crash in the query
        message = expect_error(
            "InvalidParameterException",
            getattr(ecr, operation),
            repositoryName=repository_name,
            nextToken=token(scope, key),
            filter={"tagStatus": "ANY"},
        )
        assert "nextToken" in message


@pytest.mark.parametrize(
    "policy_text",
    [
        # as deep as fits in the 10,240 characters a policy may have
        pytest.param("[" * 5000 + "]" * 5000, id="arrays-5000-deep"),
        pytest.param(
            '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*",'
            '"Action":"ecr:*","Condition":{"NumericLessThan":{"aws:EpochTime":'
            + HUGE_DIGITS
            + "}}}]}",
            id="5000-digit-number",
        ),
        pytest.param(
            '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*",'
            '"Action":"ecr:*","Sid":' + "[" * 200 + "]" * 200 + "}]}",
            id="sid-200-deep",
        ),
    ],
)
def test_a_policy_text_no_parser_should_follow_is_an_invalid_policy(
    server: EcrdServer, repository_name: str, policy_text: str
) -> None:
    ecr = server.ecr()
    ecr.create_repository(repositoryName=repository_name)
    message = expect_error(
        "InvalidParameterException",
        ecr.set_repository_policy,
        repositoryName=repository_name,
        policyText=policy_text,
    )
    assert message.endswith("'Invalid repository policy provided'"), message
    expect_error(
        "RepositoryPolicyNotFoundException",
        ecr.get_repository_policy,
        repositoryName=repository_name,
    )
    message = expect_error(
        "InvalidParameterException", ecr.put_registry_policy, policyText=policy_text
    )
    assert message.endswith("'Invalid registry policy provided'"), message


# Non-ASCII in what the signature check compares


def signed_headers(body: bytes, operation: str = "DescribeRepositories") -> dict[str, str]:
    request = AWSRequest(
        method="POST",
        url="http://ecrd/",
        data=body,
        headers={
            "X-Amz-Target": f"{TARGET}.{operation}",
            "Content-Type": "application/x-amz-json-1.1",
        },
    )
    SigV4Auth(Credentials(ROOT_ACCESS_KEY_ID, ROOT_SECRET_ACCESS_KEY), "ecr", REGION).add_auth(
        request
    )
    return dict(request.headers.items())


@pytest.mark.parametrize(
    ("header", "replace"),
    [
        pytest.param("Authorization", lambda value: value[:-64] + "ä" * 64, id="signature"),
        pytest.param("Authorization", lambda value: value[:-1] + "\u00ff", id="signature-end"),
        pytest.param("X-Amz-Content-SHA256", lambda value: "ä" * 64, id="payload-hash"),
        pytest.param("X-Amz-Date", lambda value: "２０２６" + value[4:], id="date-wide-digits"),
    ],
)
def test_non_ascii_in_a_signature_is_refused_not_a_crash(
    server: EcrdServer, header: str, replace: Any
) -> None:
    # given a request signed by the root key, then one header changed to non-ASCII
    body = b"{}"
    headers = signed_headers(body)
    headers.setdefault("X-Amz-Content-SHA256", "0" * 64)
    headers[header] = replace(headers[header])
    raw = {name.encode(): value.encode("utf-8") for name, value in headers.items()}
    # when it is sent
    response = httpx.post(f"{server.url}/", content=body, headers=raw, timeout=30)
    # then it is an authentication error in AWS's shape
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["__type"] in {
        "InvalidSignatureException",
        "IncompleteSignatureException",
        "UnrecognizedClientException",
    }


# Naming a registry creates nothing


def registry_rows(server: EcrdServer, account_id: str) -> int:
    rows = server.metadata_query(
        "SELECT count(*) FROM registries WHERE account_id = :account", account=account_id
    )
    return int(rows[0][0])


def test_calls_naming_another_accounts_registry_create_no_row(server: EcrdServer) -> None:
    # given an account nobody has stored anything in
    stranger = "987654321098"
    ecr = server.ecr()
    # when the root of the default account names it in reads and in refused writes
    for operation, arguments in (
        (ecr.describe_repositories, {}),
        (ecr.create_repository, {"repositoryName": "planted"}),
        (ecr.set_repository_policy, {"repositoryName": "planted", "policyText": "{}"}),
        (ecr.list_images, {"repositoryName": "planted"}),
    ):
        try:
            operation(registryId=stranger, **arguments)
        except ecr.exceptions.ClientError as error:
            assert error.response["ResponseMetadata"]["HTTPStatusCode"] < 500
    # then no registry row was written for it
    assert registry_rows(server, stranger) == 0


def test_a_made_up_registry_host_from_an_anonymous_caller_creates_no_row(tmp_path: Any) -> None:
    # given a server whose registries have hosts of their own
    instance = EcrdServer(tmp_path / "data", environment={"ECRD_DOMAIN": "example.test"})
    instance.start()
    try:
        for number in range(20):
            account = f"55500000{number:04d}"
            host = f"{account}.dkr.ecr.eu-west-1.example.test"
            # when anonymous requests name that host
            for path in ("/v2/", "/v2/_catalog", "/v2/some/repo/manifests/latest"):
                response = httpx.get(f"{instance.url}{path}", headers={"Host": host}, timeout=30)
                assert response.status_code == 401, response.text
            # then no registry row was made for it
            assert registry_rows(instance, account) == 0
    finally:
        instance.stop()
