"""GET /v2/<name>/tags/list and GET /v2/_catalog, with n/last pagination and Link."""

from __future__ import annotations

import re

import httpx

from tests.conftest import EcrdServer
from tests.oci.helpers import error_codes, push_blob, push_image, put_manifest

TAGS = ["v10", "v2", "alpha", "Beta", "v1", "latest"]
LINK = re.compile(r'^<(?P<url>[^>]+)>; rel="next"$')


def _push_tags(client: httpx.Client, repository: str) -> None:
    payload, _ = push_image(client, repository, TAGS[0])
    for tag in TAGS[1:]:
        assert put_manifest(client, repository, tag, payload).status_code == 201


def _next_url(response: httpx.Response) -> str | None:
    link = response.headers.get("Link")
    if link is None:
        return None
    match = LINK.match(link)
    assert match is not None, link
    return match.group("url")


def test_tags_list_is_lexical(client: httpx.Client, repository_name: str) -> None:
    # given a repository with several tags
    _push_tags(client, repository_name)
    # when its tags are listed
    response = client.get(f"/v2/{repository_name}/tags/list")
    # then all come back in lexical order, with no Link
    assert response.status_code == 200
    assert response.json() == {"name": repository_name, "tags": sorted(TAGS)}
    assert "Link" not in response.headers


def test_tags_list_pages_with_n_and_last(client: httpx.Client, repository_name: str) -> None:
    # given a repository with several tags
    _push_tags(client, repository_name)
    # when they are listed two at a time, following Link headers
    seen: list[str] = []
    url: str | None = f"/v2/{repository_name}/tags/list?n=2"
    pages = 0
    while url is not None and pages < 10:
        response = client.get(url)
        assert response.status_code == 200
        page = response.json()["tags"]
        assert len(page) <= 2
        seen.extend(page)
        url = _next_url(response)
        if url is not None:
            assert url.startswith(f"/v2/{repository_name}/tags/list?")
            assert "n=2" in url
        pages += 1
    # then every tag came exactly once, in order, over three pages
    assert seen == sorted(TAGS)
    assert pages == 3


def test_tags_list_with_last(client: httpx.Client, repository_name: str) -> None:
    # given a repository with several tags
    _push_tags(client, repository_name)
    # when tags after "latest" are asked for
    response = client.get(f"/v2/{repository_name}/tags/list", params={"last": "latest"})
    # then only later ones come back
    expected = [tag for tag in sorted(TAGS) if tag > "latest"]
    assert response.json()["tags"] == expected
    # and n limits them
    limited = client.get(f"/v2/{repository_name}/tags/list", params={"n": 1, "last": "latest"})
    assert limited.json()["tags"] == expected[:1]
    assert "Link" in limited.headers


def test_tags_list_with_n_zero(client: httpx.Client, repository_name: str) -> None:
    # given a repository with tags
    _push_tags(client, repository_name)
    # when n=0 is asked for
    response = client.get(f"/v2/{repository_name}/tags/list", params={"n": 0})
    # then the list is empty
    assert response.status_code == 200
    assert response.json()["tags"] == []


def test_tags_of_repository_without_tags(client: httpx.Client, repository_name: str) -> None:
    # given a repository holding only a blob
    push_blob(client, repository_name, b"data")
    # when its tags are listed
    response = client.get(f"/v2/{repository_name}/tags/list")
    # then the list is empty
    assert response.status_code == 200
    assert response.json() == {"name": repository_name, "tags": []}


def test_tags_of_unknown_repository_is_404(client: httpx.Client, repository_name: str) -> None:
    # given no such repository
    # when its tags are listed
    response = client.get(f"/v2/{repository_name}/tags/list")
    # then the name is unknown
    assert response.status_code == 404
    assert error_codes(response) == ["NAME_UNKNOWN"]


def test_invalid_n_is_refused(client: httpx.Client, repository_name: str) -> None:
    # given a repository with tags
    _push_tags(client, repository_name)
    # when n is not a number
    response = client.get(f"/v2/{repository_name}/tags/list", params={"n": "many"})
    # then the request is refused
    assert response.status_code == 400
    assert error_codes(response) == ["PAGINATION_NUMBER_INVALID"]


def test_catalog_pages_with_n_and_last(own_server: EcrdServer) -> None:
    # given an empty registry and five repositories pushed to it
    names = ["zeta", "alpha/one", "alpha", "beta/b/c", "alpha-two"]
    with own_server.http() as client:
        assert client.get("/v2/_catalog").json() == {"repositories": []}
        for name in names:
            push_blob(client, name, b"data")
        # when the catalog is listed whole
        whole = client.get("/v2/_catalog")
        # then all names come back in lexical order
        assert whole.status_code == 200
        assert whole.json() == {"repositories": sorted(names)}
        # when it is listed two at a time following Link headers
        seen: list[str] = []
        url: str | None = "/v2/_catalog?n=2"
        pages = 0
        while url is not None and pages < 10:
            response = client.get(url)
            assert response.status_code == 200
            seen.extend(response.json()["repositories"])
            url = _next_url(response)
            if url is not None:
                assert url.startswith("/v2/_catalog?")
            pages += 1
        # then each name came once, over three pages
        assert seen == sorted(names)
        assert pages == 3
        # and last skips past a name
        after = client.get("/v2/_catalog", params={"last": "alpha/one", "n": 10})
        assert after.json()["repositories"] == [n for n in sorted(names) if n > "alpha/one"]


def test_catalog_with_n_zero(client: httpx.Client, repository_name: str) -> None:
    # given a registry with at least one repository
    push_blob(client, repository_name, b"data")
    # when n=0 is asked for
    response = client.get("/v2/_catalog", params={"n": 0})
    # then the list is empty
    assert response.status_code == 200
    assert response.json()["repositories"] == []
