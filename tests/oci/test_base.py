"""GET /v2/: the API version check every client makes first."""

from __future__ import annotations

import httpx


def test_base_endpoint_answers_200_with_api_version_header(client: httpx.Client) -> None:
    # given a running registry
    # when a client checks the API version
    response = client.get("/v2/")
    # then it answers 200 and names the Distribution API version
    assert response.status_code == 200
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"


def test_every_response_carries_api_version_header(
    client: httpx.Client, repository_name: str
) -> None:
    # given a repository that does not exist
    # when a client asks for something in it
    response = client.get(f"/v2/{repository_name}/tags/list")
    # then even the error response carries the header
    assert response.status_code == 404
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
