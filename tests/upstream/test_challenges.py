"""WWW-Authenticate parsing (RFC 7235's grammar and the challenges registries send), the token
realm's rules, and the region of an ECR registry host. No server: pure functions."""

from __future__ import annotations

import httpx
import pytest

from ecrd.upstream import BasicCredentials, UpstreamInvalid
from ecrd.upstream.auth import BearerTokens, Challenge, parse_challenges, usable_challenge
from ecrd.upstream.ecr_login import is_aws_registry_host, region_of

pytestmark = pytest.mark.metadata_independent


def test_rfc_7235_example_with_two_challenges_in_one_header() -> None:
    # RFC 7235 section 4.1's example
    header = 'Newauth realm="apps", type=1, title="Login to \\"apps\\"", Basic realm="simple"'
    assert parse_challenges([header]) == [
        Challenge("newauth", {"realm": "apps", "type": "1", "title": 'Login to "apps"'}),
        Challenge("basic", {"realm": "simple"}),
    ]
    assert usable_challenge([header]) == Challenge("basic", {"realm": "simple"})


def test_docker_hubs_bearer_challenge() -> None:
    header = (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/nginx:pull"'
    )
    assert usable_challenge([header]) == Challenge(
        "bearer",
        {
            "realm": "https://auth.docker.io/token",
            "service": "registry.docker.io",
            "scope": "repository:library/nginx:pull",
        },
    )


def test_bearer_is_preferred_across_header_lines_and_case_does_not_matter() -> None:
    headers = ['BASIC Realm="registry"', 'bearer REALM="https://r.example/token"']
    assert usable_challenge(headers) == Challenge("bearer", {"realm": "https://r.example/token"})


@pytest.mark.parametrize(
    "header",
    ["", '"""', "=", "Negotiate abc==", 'Digest realm="x", nonce="1"', "  ,  ,", "ÿ realm=x"],
)
def test_no_usable_challenge_in_malformed_or_foreign_headers(header: str) -> None:
    assert usable_challenge([header]) is None


def test_an_oversized_header_is_not_parsed() -> None:
    assert parse_challenges(['Basic realm="' + "x" * 10_000 + '"']) == []


def test_basic_credentials_never_show_the_password() -> None:
    credentials = BasicCredentials("AWS", "secret-token")
    assert "secret-token" not in repr(credentials)
    # RFC 7617: base64 of user:password
    assert credentials.header() == "Basic QVdTOnNlY3JldC10b2tlbg=="


def test_a_token_realm_must_be_https_for_an_https_registry() -> None:
    tokens = BearerTokens(httpx.AsyncClient(), httpx.URL("https://registry.example/"))
    with pytest.raises(UpstreamInvalid, match="not HTTPS"):
        tokens.key(Challenge("bearer", {"realm": "http://auth.example/token"}), "")
    with pytest.raises(UpstreamInvalid, match="no usable realm"):
        tokens.key(Challenge("bearer", {"realm": "ftp://auth.example/token"}), "")
    key = tokens.key(
        Challenge("bearer", {"realm": "https://auth.example/token", "scope": "theirs"}), None
    )
    assert (key.realm, key.service, key.scope) == ("https://auth.example/token", "", "theirs")


@pytest.mark.parametrize(
    ("host", "region", "aws"),
    [
        ("123456789012.dkr.ecr.eu-west-1.amazonaws.com", "eu-west-1", True),
        ("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com", "us-gov-west-1", True),
        ("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", "cn-north-1", True),
        ("123456789012.dkr.ecr.ap-southeast-2.amazonaws.com:443", "ap-southeast-2", True),
        # ecrd's own hosts with a `domain`
        ("123456789012.dkr.ecr.eu-central-1.registry.internal:5000", "eu-central-1", False),
        ("registry-1.docker.io", "us-east-2", False),
        ("12345.dkr.ecr.eu-west-1.amazonaws.com", "us-east-2", False),
    ],
)
def test_region_of_an_ecr_registry_host(host: str, region: str, aws: bool) -> None:
    assert region_of(host, "us-east-2") == region
    assert is_aws_registry_host(host) is aws
