"""GET /: a page naming the endpoints (JSON when asked for); POST / stays the AWS API."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import EcrdServer

pytestmark = pytest.mark.metadata_independent
PATHS = ["/v2/", "/gallery", "/healthz", "/readyz", "/metrics"]


def test_the_home_page_names_every_endpoint(server: EcrdServer) -> None:
    # when a person opens the address in a browser, without credentials
    response = httpx.get(f"{server.url}/", headers={"Accept": "text/html,*/*;q=0.8"}, timeout=30)
    # then a page names the API with the command that uses it, the registry, the gallery
    # and the operator's endpoints
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    page = response.text
    assert "<code>POST /</code>" in page
    assert f"aws ecr describe-repositories --endpoint-url {server.url}" in page
    assert f"aws ecr-public describe-registries --endpoint-url {server.url}" in page
    for path in PATHS:
        assert f'<code>GET <a href="{path}">{path}</a></code>' in page
    # and it runs no script
    assert "script-src" not in response.headers["content-security-policy"]
    assert "default-src 'none'" in response.headers["content-security-policy"]


def test_a_client_asking_for_json_gets_the_endpoints_as_json(server: EcrdServer) -> None:
    # when a client asks for JSON
    response = httpx.get(f"{server.url}/", headers={"Accept": "application/json"}, timeout=30)
    # then it gets the same endpoints as data
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    endpoints = response.json()["endpoints"]
    assert (endpoints["api"]["method"], endpoints["api"]["path"]) == ("POST", "/")
    assert f"--endpoint-url {server.url}" in endpoints["api"]["example"]
    assert sorted(entry["path"] for name, entry in endpoints.items() if name != "api") == sorted(
        PATHS
    )


def test_post_to_the_root_is_still_the_aws_endpoint(server: EcrdServer) -> None:
    # when boto3 calls the API on the same path
    repositories = server.ecr().describe_repositories()["repositories"]
    # then it answers as ECR does
    assert isinstance(repositories, list)
    # and an unsigned POST without a target gets AWS's error, not the page
    response = httpx.post(f"{server.url}/", content=b"{}", timeout=30)
    assert response.status_code == 400
    assert response.json()["__type"] == "UnknownOperationException"
    assert "x-amzn-RequestId" in response.headers
