"""One access-log line per request: its id, the caller's ARN, method, path, route, status,
bytes and duration; never a token, a password or a download URL's signature."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.conftest import ACCOUNT_ID, ROOT_SECRET_ACCESS_KEY, EcrdServer, basic_login
from tests.observability.helpers import access_line_of
from tests.oci.helpers import OCI_MANIFEST, digest_of, push_image

ROOT_ARN = f"arn:aws:iam::{ACCOUNT_ID}:root"
# 16 random bytes in hex, as nginx's $request_id.
REQUEST_ID = re.compile(r"[0-9a-f]{32}")
ECR_TARGET = "AmazonEC2ContainerRegistry_V20150921"


def test_an_api_call_is_logged_with_its_request_id_caller_and_operation(
    server: EcrdServer, client: httpx.Client
) -> None:
    # when a signed API call is made
    body = b'{"maxResults": 2}'
    response = client.post(
        "/",
        content=body,
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": f"{ECR_TARGET}.DescribeRepositories",
        },
    )
    assert response.status_code == 200
    request_id = response.headers["x-amzn-RequestId"]
    # then its line has the id AWS clients report, the caller's ARN and the operation
    line = access_line_of(server, request_id)
    assert line["principal"] == ROOT_ARN
    assert (line["method"], line["path"], line["route"]) == (
        "POST",
        "/",
        "ecr:DescribeRepositories",
    )
    assert line["status"] == "200"
    assert (line["bytes_in"], line["bytes_out"]) == (str(len(body)), str(len(response.content)))
    assert float(line["duration_ms"]) > 0
    # and the API door does not add a second id header
    assert "x-request-id" not in response.headers


def test_a_pull_is_logged_with_the_id_it_was_answered_with(
    server: EcrdServer, client: httpx.Client, repository_name: str
) -> None:
    # given a pushed image; when its manifest is pulled with a registry token
    manifest, _ = push_image(client, repository_name, "v1")
    response = client.get(f"/v2/{repository_name}/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert response.status_code == 200
    # then the response carries a request id, and the one log line with it says who pulled what
    request_id = response.headers["X-Request-Id"]
    assert REQUEST_ID.fullmatch(request_id)
    line = access_line_of(server, request_id)
    assert line["principal"] == ROOT_ARN
    assert line["method"] == "GET"
    assert line["path"] == f"/v2/{repository_name}/manifests/v1"
    assert line["route"] == "/v2/{name}/manifests/{reference}"
    assert (line["status"], line["bytes_in"], line["bytes_out"]) == ("200", "0", str(len(manifest)))


def test_an_anonymous_refusal_is_logged_as_anonymous(server: EcrdServer) -> None:
    # when /v2/ is asked without credentials
    response = httpx.get(f"{server.url}/v2/", timeout=30)
    # then it is refused, and logged as anonymous with the status it got
    assert response.status_code == 401
    line = access_line_of(server, response.headers["X-Request-Id"])
    assert (line["principal"], line["path"], line["status"]) == ("anonymous", "/v2/", "401")


# ecrd's own download URLs: with S3, GetDownloadUrlForLayer hands out S3's.
@pytest.mark.filesystem_blobs
def test_no_token_password_or_signature_reaches_the_access_log(
    server: EcrdServer, client: httpx.Client, repository_name: str
) -> None:
    # given a pushed layer and its presigned download URL (a credential while it is valid)
    layer = b"presigned layer " + repository_name.encode()
    push_image(client, repository_name, "v1", layer=layer)
    url = server.ecr().get_download_url_for_layer(
        repositoryName=repository_name, layerDigest=digest_of(layer)
    )["downloadUrl"]
    signature = parse_qs(urlsplit(url).query)["X-Ecrd-Signature"][0]

    # when the URL is fetched without credentials
    download = httpx.get(url, timeout=30)
    assert (download.status_code, download.content) == (200, layer)

    # then its line shows the path with the signature hidden, the expiry kept
    line = access_line_of(server, download.headers["X-Request-Id"])
    path, _, query = line["path"].partition("?")
    assert path == f"/v2/{repository_name}/blobs/{digest_of(layer)}"
    assert parse_qs(query)["X-Ecrd-Signature"] == ["REDACTED"]
    assert "X-Ecrd-Expires" in parse_qs(query)
    assert (line["principal"], line["bytes_out"]) == ("anonymous", str(len(layer)))
    # and nowhere in the log is the signature, the registry token, the secret or a header
    log = server.log_path.read_text(errors="replace")
    assert signature not in log
    assert server.registry_password() not in log
    assert ROOT_SECRET_ACCESS_KEY not in log
    assert basic_login(server) not in log
    assert "AWS4-HMAC-SHA256" not in log and "Credential=" not in log
