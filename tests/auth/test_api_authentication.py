"""Who is calling the ECR API: AWS Signature Version 4 as seen on the wire.

Requests are signed by boto3, or by hand with botocore's SigV4Auth so that the test controls
the timestamp, the signed headers, the body and the credential scope. The expected errors are
the ones AWS's JSON services answer: MissingAuthenticationTokenException for an unsigned call,
UnrecognizedClientException for an unknown key, InvalidSignatureException for a signature that
does not verify or is outside the 5-minute window, IncompleteSignatureException for a malformed
Authorization header. Also the open auth mode and the bootstrap root key.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.api_errors import expect_error
from tests.conftest import (
    ACCOUNT_ID,
    REGION,
    ROOT_ACCESS_KEY_ID,
    ROOT_SECRET_ACCESS_KEY,
    AccessKeyPair,
    EcrdServer,
    clean_environment,
)

TARGET_PREFIX = "AmazonEC2ContainerRegistry_V20150921"
JSON_CONTENT_TYPE = "application/x-amz-json-1.1"
SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check "
    "your AWS Secret Access Key and signing method. Consult the service documentation for "
    "details."
)
INVALID_TOKEN = "The security token included in the request is invalid."
TIMESTAMP = r"\d{8}T\d{6}Z"
OPEN_ACCOUNT = "123456789012"
CLI_TIMEOUT = 60


# Helpers


def unique_name(prefix: str = "authn") -> str:
    return f"{prefix}/{uuid.uuid4().hex[:12]}"


class _SignerAt(SigV4Auth):  # type: ignore[misc]
    """SigV4Auth with a timestamp of the test's choosing instead of the clock's."""

    def __init__(self, credentials: Credentials, service: str, region: str, at: datetime):
        super().__init__(credentials, service, region)
        self._at = at

    def add_auth(self, request: AWSRequest) -> None:
        request.context["timestamp"] = self._at.strftime(SIGV4_TIMESTAMP)
        self._modify_request_before_signing(request)
        canonical = self.canonical_request(request)
        signature = self.signature(self.string_to_sign(request, canonical), request)
        self._inject_signature_to_request(request, signature)


@dataclass
class SignedCall:
    """A signed `POST /` API call, whose parts the test may change before sending it."""

    url: str
    headers: dict[str, str]
    body: bytes

    def send(self) -> httpx.Response:
        return httpx.post(self.url, content=self.body, headers=self.headers, timeout=30)


def signed_call(
    server: EcrdServer,
    operation: str,
    params: dict[str, Any] | None = None,
    *,
    access_key_id: str = ROOT_ACCESS_KEY_ID,
    secret_access_key: str = ROOT_SECRET_ACCESS_KEY,
    region: str = REGION,
    service: str = "ecr",
    at: datetime | None = None,
) -> SignedCall:
    """An AWS JSON 1.1 call to `operation`, signed as botocore signs it (Content-Type, Host,
    X-Amz-Date and X-Amz-Target in SignedHeaders)."""
    body = json.dumps(params or {}).encode()
    request = AWSRequest(
        method="POST",
        url=f"{server.url}/",
        data=body,
        headers={
            "Content-Type": JSON_CONTENT_TYPE,
            "X-Amz-Target": f"{TARGET_PREFIX}.{operation}",
        },
    )
    credentials = Credentials(access_key_id, secret_access_key)
    _SignerAt(credentials, service, region, at or datetime.now(UTC)).add_auth(request)
    return SignedCall(f"{server.url}/", dict(request.headers.items()), body)


def aws_error(response: httpx.Response) -> tuple[str, str]:
    """The error code and message of an AWS JSON error answer, checked for its form."""
    assert 400 <= response.status_code < 500, response.text
    body = response.json()
    assert response.headers["x-amzn-ErrorType"].split(":")[0] == body["__type"]
    return body["__type"], body.get("message", body.get("Message", ""))


def run_keys(server: EcrdServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ecrd", "keys", *args, *server.store_arguments()],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        env=clean_environment(),
    )


# Well-signed calls


def test_a_call_signed_by_hand_with_the_root_key_is_accepted(server: EcrdServer) -> None:
    # given a call signed now with the root key, as botocore signs it
    call = signed_call(server, "DescribeRegistry")

    # when it is sent
    response = call.send()

    # then it is answered for the root's account
    assert response.status_code == 200, response.text
    assert response.json()["registryId"] == ACCOUNT_ID


def test_the_region_comes_from_the_credential_scope(server: EcrdServer) -> None:
    # given a client whose requests are signed for eu-west-1
    ecr = server.ecr(region_name="eu-west-1")
    name = unique_name()

    # when it creates a repository
    created = ecr.create_repository(repositoryName=name)["repository"]

    # then the repository is in eu-west-1, and not in us-east-1
    try:
        assert created["repositoryArn"] == f"arn:aws:ecr:eu-west-1:{ACCOUNT_ID}:repository/{name}"
        expect_error(
            "RepositoryNotFoundException",
            server.ecr().describe_repositories,
            repositoryNames=[name],
        )
    finally:
        ecr.delete_repository(repositoryName=name, force=True)


def test_a_call_signed_four_minutes_ago_is_accepted(server: EcrdServer) -> None:
    # given a call signed 4 minutes ago, inside AWS's 5-minute window
    call = signed_call(server, "DescribeRegistry", at=datetime.now(UTC) - timedelta(minutes=4))

    # when it arrives
    response = call.send()

    # then it is answered
    assert response.status_code == 200, response.text


# Missing or unknown credentials


def test_an_unsigned_call_is_missing_authentication_token(server: EcrdServer) -> None:
    # given a well-formed API call with no Authorization header
    headers = {"X-Amz-Target": f"{TARGET_PREFIX}.DescribeRegistry"}
    headers["Content-Type"] = JSON_CONTENT_TYPE

    # when it is sent
    response = httpx.post(f"{server.url}/", content=b"{}", headers=headers, timeout=30)

    # then AWS's answer for a request without credentials: 403 MissingAuthenticationToken
    assert response.status_code == 403
    assert aws_error(response)[0] == "MissingAuthenticationTokenException"


def test_an_unknown_access_key_is_an_unrecognized_client(server: EcrdServer) -> None:
    # given a client with an access key the server never issued
    ecr = server.ecr(aws_access_key_id="AKIA" + "Z" * 16, aws_secret_access_key="x" * 40)

    # when it calls the API
    message = expect_error("UnrecognizedClientException", ecr.describe_repositories)

    # then the message is AWS's
    assert message == INVALID_TOKEN


def test_the_right_key_with_the_wrong_secret_is_an_invalid_signature(
    server: EcrdServer,
) -> None:
    # given the root key id with another secret
    ecr = server.ecr(aws_secret_access_key="wrong" + ROOT_SECRET_ACCESS_KEY[5:])

    # when it calls the API
    message = expect_error("InvalidSignatureException", ecr.describe_repositories)

    # then the message is AWS's signature mismatch text
    assert message == SIGNATURE_MISMATCH


def test_error_responses_carry_a_request_id_and_the_error_type(server: EcrdServer) -> None:
    # given a call signed with a key the server does not know
    call = signed_call(server, "DescribeRegistry", access_key_id="AKIA" + "Q" * 16)

    # when it is answered
    response = call.send()

    # then the error has a request id and its type in x-amzn-ErrorType, as AWS JSON services do
    assert response.headers.get("x-amzn-RequestId")
    assert response.headers["x-amzn-ErrorType"].split(":")[0] == "UnrecognizedClientException"
    assert aws_error(response) == ("UnrecognizedClientException", INVALID_TOKEN)


def test_two_error_responses_have_different_request_ids(server: EcrdServer) -> None:
    # given two unsigned calls
    headers = {"X-Amz-Target": f"{TARGET_PREFIX}.DescribeRegistry"}

    # when both are answered
    first = httpx.post(f"{server.url}/", content=b"{}", headers=headers, timeout=30)
    second = httpx.post(f"{server.url}/", content=b"{}", headers=headers, timeout=30)

    # then each has its own request id
    assert first.headers["x-amzn-RequestId"] != second.headers["x-amzn-RequestId"]


# Tampering


def test_a_body_changed_after_signing_is_an_invalid_signature(server: EcrdServer) -> None:
    # given a DescribeRepositories call for one repository, signed
    call = signed_call(server, "DescribeRepositories", {"repositoryNames": ["authn/one"]})

    # when its body is changed on the way to name another repository
    call.body = json.dumps({"repositoryNames": ["authn/two"]}).encode()

    # then the signature no longer matches
    assert aws_error(call.send()) == ("InvalidSignatureException", SIGNATURE_MISMATCH)


def test_an_altered_signature_is_an_invalid_signature(server: EcrdServer) -> None:
    # given a signed call
    call = signed_call(server, "DescribeRegistry")

    # when the last hex digit of its signature is changed
    authorization = call.headers["Authorization"]
    last = authorization[-1]
    call.headers["Authorization"] = authorization[:-1] + ("0" if last != "0" else "1")

    # then it does not verify
    assert aws_error(call.send()) == ("InvalidSignatureException", SIGNATURE_MISMATCH)


def test_a_changed_signed_header_is_an_invalid_signature(server: EcrdServer) -> None:
    # given a signed DescribeRepositories call (x-amz-target is a signed header)
    call = signed_call(server, "DescribeRepositories")
    assert "x-amz-target" in call.headers["Authorization"]

    # when X-Amz-Target is changed to another operation with the same body
    call.headers["X-Amz-Target"] = f"{TARGET_PREFIX}.DeleteRegistryPolicy"

    # then the signature does not verify (and DeleteRegistryPolicy is not run)
    assert aws_error(call.send()) == ("InvalidSignatureException", SIGNATURE_MISMATCH)


def test_a_changed_timestamp_is_an_invalid_signature(server: EcrdServer) -> None:
    # given a signed call (X-Amz-Date is part of what is signed)
    signed_at = datetime.now(UTC).replace(microsecond=0)
    call = signed_call(server, "DescribeRegistry", at=signed_at)

    # when its X-Amz-Date is moved one second within the same minute (so the same day)
    step = timedelta(seconds=1 if signed_at.second < 59 else -1)
    call.headers["X-Amz-Date"] = (signed_at + step).strftime(SIGV4_TIMESTAMP)

    # then the signature does not verify
    assert aws_error(call.send()) == ("InvalidSignatureException", SIGNATURE_MISMATCH)


def test_a_scope_date_other_than_the_timestamp_is_refused(server: EcrdServer) -> None:
    # given a call whose credential scope says another day than its X-Amz-Date
    call = signed_call(server, "DescribeRegistry")
    stamp = call.headers["X-Amz-Date"]
    day = stamp[:8]
    other_day = (datetime.strptime(day, "%Y%m%d") - timedelta(days=1)).strftime("%Y%m%d")
    call.headers["Authorization"] = call.headers["Authorization"].replace(
        f"/{day}/", f"/{other_day}/"
    )

    # when it is sent, then AWS's message for the mismatch
    assert aws_error(call.send()) == (
        "InvalidSignatureException",
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from "
        f"HTTP: '{other_day}' != '{day}', from '{stamp}'.",
    )


def test_a_scope_with_an_invalid_region_is_refused(server: EcrdServer) -> None:
    # given a call signed for a region that cannot exist
    call = signed_call(server, "DescribeRegistry", region="mars")

    # when it is sent, then the scope is refused with AWS's message
    assert aws_error(call.send()) == (
        "InvalidSignatureException",
        "Credential should be scoped to a valid region.",
    )


def test_a_scope_for_another_service_is_refused(server: EcrdServer) -> None:
    # given a call signed for the s3 service
    call = signed_call(server, "DescribeRegistry", service="s3")

    # when it is sent to ECR
    response = call.send()

    # then the scope is refused with AWS's message
    assert aws_error(response) == (
        "InvalidSignatureException",
        "Credential should be scoped to correct service: 'ecr'.",
    )


def test_an_authorization_header_without_signature_is_incomplete(server: EcrdServer) -> None:
    # given a signed call whose Authorization header lost its Signature= part
    call = signed_call(server, "DescribeRegistry")
    authorization = call.headers["Authorization"]
    call.headers["Authorization"] = re.sub(r",\s*Signature=[0-9a-f]+", "", authorization)
    assert "Signature=" not in call.headers["Authorization"]

    # when it is sent
    code, message = aws_error(call.send())

    # then the signature is incomplete, and the message says what is missing
    assert code == "IncompleteSignatureException"
    assert "Authorization header requires 'Signature' parameter." in message


def test_an_unknown_algorithm_is_incomplete(server: EcrdServer) -> None:
    # given an Authorization header of another scheme
    headers = {
        "X-Amz-Target": f"{TARGET_PREFIX}.DescribeRegistry",
        "Content-Type": JSON_CONTENT_TYPE,
        "Authorization": "Basic QVdTOnNlY3JldA==",
    }

    # when it is sent
    response = httpx.post(f"{server.url}/", content=b"{}", headers=headers, timeout=30)

    # then it is refused as an incomplete signature
    assert aws_error(response)[0] == "IncompleteSignatureException"


# The clock


def test_a_call_signed_six_minutes_ago_has_expired(server: EcrdServer) -> None:
    # given a call signed 6 minutes ago (a replay outside the 5-minute window)
    signed_at = datetime.now(UTC) - timedelta(minutes=6)
    call = signed_call(server, "DescribeRegistry", at=signed_at)

    # when it arrives
    code, message = aws_error(call.send())

    # then AWS's "Signature expired" answer, naming the request's timestamp
    assert code == "InvalidSignatureException"
    stamp = signed_at.strftime(SIGV4_TIMESTAMP)
    pattern = (
        rf"Signature expired: {stamp} is now earlier than ({TIMESTAMP}) "
        rf"\(({TIMESTAMP}) - 5 min\.\)"
    )
    match = re.fullmatch(pattern, message)
    assert match is not None, message
    earliest, now = (datetime.strptime(g, SIGV4_TIMESTAMP) for g in match.groups())
    assert now - earliest == timedelta(minutes=5)


def test_a_call_signed_six_minutes_ahead_is_not_yet_current(server: EcrdServer) -> None:
    # given a call signed with a clock 6 minutes fast
    signed_at = datetime.now(UTC) + timedelta(minutes=6)
    call = signed_call(server, "DescribeRegistry", at=signed_at)

    # when it arrives
    code, message = aws_error(call.send())

    # then AWS's "Signature not yet current" answer
    assert code == "InvalidSignatureException"
    stamp = signed_at.strftime(SIGV4_TIMESTAMP)
    pattern = (
        rf"Signature not yet current: {stamp} is still later than ({TIMESTAMP}) "
        rf"\(({TIMESTAMP}) \+ 5 min\.\)"
    )
    assert re.fullmatch(pattern, message) is not None, message


# Keys that go away


def test_a_deleted_key_stops_working_at_once(server: EcrdServer) -> None:
    # given a new key of the root that works
    key = server.create_key(ACCOUNT_ID)
    ecr = server.ecr_as(key)
    assert ecr.describe_registry()["registryId"] == ACCOUNT_ID

    # when it is deleted with `ecrd keys delete` while the server runs
    deleted = run_keys(server, "delete", key.access_key_id)
    assert deleted.returncode == 0, deleted.stderr

    # then the very next call with it is from an unknown key
    message = expect_error("UnrecognizedClientException", ecr.describe_registry)
    assert message == INVALID_TOKEN


# Open mode


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EcrdServer]:
    """A server in ECRD_AUTH_MODE=open whose default account is OPEN_ACCOUNT."""
    instance = EcrdServer(
        tmp_path_factory.mktemp("open") / "data",
        environment={"ECRD_AUTH_MODE": "open", "ECRD_ACCOUNT_ID": OPEN_ACCOUNT},
    )
    instance.start()
    yield instance
    instance.stop()


def test_open_mode_takes_any_key_as_the_root_of_the_configured_account(
    open_server: EcrdServer,
) -> None:
    # given a key pair the server never issued
    stranger = AccessKeyPair("AKIA" + "S" * 16, "s" * 40, "")
    ecr = open_server.ecr_as(stranger)
    name = unique_name("open")

    # when it creates a repository
    created = ecr.create_repository(repositoryName=name)["repository"]

    # then it acted as the configured account's root
    assert created["registryId"] == OPEN_ACCOUNT
    assert created["repositoryArn"] == f"arn:aws:ecr:{REGION}:{OPEN_ACCOUNT}:repository/{name}"
    # and another made-up pair sees the same registry
    other = open_server.ecr_as(AccessKeyPair("AKIA" + "T" * 16, "t" * 40, ""))
    found = other.describe_repositories(repositoryNames=[name])["repositories"]
    assert [repository["registryId"] for repository in found] == [OPEN_ACCOUNT]


def test_open_mode_still_needs_a_signature(open_server: EcrdServer) -> None:
    # given an unsigned call to the open server
    headers = {"X-Amz-Target": f"{TARGET_PREFIX}.DescribeRegistry"}

    # when it is sent
    response = httpx.post(f"{open_server.url}/", content=b"{}", headers=headers, timeout=30)

    # then it is still missing its authentication token
    assert response.status_code == 403
    assert aws_error(response)[0] == "MissingAuthenticationTokenException"


def test_open_mode_warns_in_the_log(open_server: EcrdServer) -> None:
    # given the open server has started; then its log warns about the open mode
    log = open_server.log_path.read_text()
    assert "ECRD_AUTH_MODE=open" in log
    assert OPEN_ACCOUNT in log


def test_iam_mode_does_not_warn_about_open_mode(server: EcrdServer) -> None:
    # given the ordinary server; then its log has no open-mode warning
    assert "ECRD_AUTH_MODE=open" not in server.log_path.read_text()


# The bootstrap root key

_PRINTED_KEY = re.compile(
    r"aws configure set aws_access_key_id (\S+) --profile ecrd\s+"
    r"aws configure set aws_secret_access_key (\S+) --profile ecrd"
)
_NO_BOOTSTRAP = {"ECRD_BOOTSTRAP_ACCESS_KEY_ID": "", "ECRD_BOOTSTRAP_SECRET_ACCESS_KEY": ""}


@pytest.fixture(scope="module")
def generated_key_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EcrdServer]:
    """A server started on an empty store without ECRD_BOOTSTRAP_*, so it makes its own key."""
    instance = EcrdServer(tmp_path_factory.mktemp("bootstrap") / "data", environment=_NO_BOOTSTRAP)
    instance.start()
    yield instance
    instance.stop()


def printed_keys(server: EcrdServer) -> list[tuple[str, str]]:
    return _PRINTED_KEY.findall(server.log_path.read_text())


def test_an_empty_store_prints_a_root_key_once_with_an_aws_configure_hint(
    generated_key_server: EcrdServer,
) -> None:
    # given a server started on an empty store without bootstrap variables
    log = generated_key_server.log_path.read_text()

    # then it printed one key in AWS's forms, as `aws configure` commands
    keys = printed_keys(generated_key_server)
    assert len(keys) == 1, log
    access_key_id, secret = keys[0]
    assert re.fullmatch(r"AKIA[A-Z0-9]{16}", access_key_id)
    assert len(secret) == 40
    assert "aws configure set region us-east-1 --profile ecrd" in log
    assert "export AWS_PROFILE=ecrd" in log
    # and the fixed test key of the other servers is not there
    assert ROOT_ACCESS_KEY_ID not in log


def test_the_printed_key_is_the_root_of_the_default_account(
    generated_key_server: EcrdServer,
) -> None:
    # given the key the server printed
    access_key_id, secret = printed_keys(generated_key_server)[0]
    ecr = generated_key_server.ecr_as(AccessKeyPair(access_key_id, secret, ""))
    name = unique_name("boot")

    # when boto3 uses it
    created = ecr.create_repository(repositoryName=name)["repository"]

    # then it acts as the root of the default account
    assert created["registryId"] == ACCOUNT_ID
    # and the test suite's usual key does not exist on this store
    expect_error("UnrecognizedClientException", generated_key_server.ecr().describe_registry)


def test_after_a_restart_nothing_new_is_printed_and_the_key_still_works(
    generated_key_server: EcrdServer,
) -> None:
    # given the key printed at the first start
    first = printed_keys(generated_key_server)
    assert len(first) == 1

    # when the server restarts on the same store
    generated_key_server.restart()

    # then no new key is printed, and the first one still works
    assert printed_keys(generated_key_server) == first
    access_key_id, secret = first[0]
    ecr = generated_key_server.ecr_as(AccessKeyPair(access_key_id, secret, ""))
    assert ecr.describe_registry()["registryId"] == ACCOUNT_ID


def test_bootstrap_variables_make_that_pair_the_root_key(tmp_path: Path) -> None:
    # given a fresh store and a key pair chosen in advance, as a CI script would
    access_key_id = "AKIA" + uuid.uuid4().hex[:16].upper()
    secret = "ciSecret" + uuid.uuid4().hex
    instance = EcrdServer(
        tmp_path / "data",
        environment={
            "ECRD_BOOTSTRAP_ACCESS_KEY_ID": access_key_id,
            "ECRD_BOOTSTRAP_SECRET_ACCESS_KEY": secret,
        },
    )

    # when the server starts with them
    instance.start()
    try:
        # then that pair is the default account's root, and no key is printed
        ecr = instance.ecr_as(AccessKeyPair(access_key_id, secret, ""))
        assert ecr.describe_registry()["registryId"] == ACCOUNT_ID
        assert printed_keys(instance) == []
        assert secret not in instance.log_path.read_text()
        # and the same id with another secret is refused
        wrong = instance.ecr_as(AccessKeyPair(access_key_id, secret[::-1], ""))
        expect_error("InvalidSignatureException", wrong.describe_registry)
    finally:
        instance.stop()
