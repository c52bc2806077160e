"""Per-registry hosts (a configured domain) and the strict_references setting."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.aws.conftest import ecr_client
from tests.conftest import EcrdServer

DOMAIN = "ecr.example.test"


def configured_server(tmp_path: Path, settings: str) -> EcrdServer:
    instance = EcrdServer(tmp_path / "data")
    config = tmp_path / "ecrd.toml"
    config.write_text(settings.replace("{port}", str(instance.port)))
    instance.extra_args = ["--config", str(config)]
    return instance


@pytest.fixture
def domain_server(tmp_path: Path) -> Iterator[EcrdServer]:
    instance = configured_server(
        tmp_path, f'domain = "{DOMAIN}"\npublic_host = "localhost:{{port}}"\n'
    )
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def relaxed_server(tmp_path: Path) -> Iterator[EcrdServer]:
    instance = configured_server(tmp_path, "strict_references = false\n")
    instance.start()
    yield instance
    instance.stop()


def fabricated_manifest() -> str:
    """An image manifest whose config and layer were never uploaded."""
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": "sha256:" + hashlib.sha256(b"config").hexdigest(),
                "size": 6,
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": "sha256:" + hashlib.sha256(b"layer").hexdigest(),
                    "size": 5,
                }
            ],
        }
    )


def test_with_a_domain_each_registry_has_its_own_host(domain_server: EcrdServer) -> None:
    # Given a server with a domain, and a repository created in eu-west-1
    ecr = ecr_client(domain_server, region="eu-west-1")
    repository = ecr.create_repository(repositoryName="hosted/app")["repository"]
    # Then its URI names that registry's host, with the public port, as on AWS
    host = f"000000000000.dkr.ecr.eu-west-1.{DOMAIN}:{domain_server.port}"
    assert repository["repositoryUri"] == f"{host}/hosted/app"
    token = ecr.get_authorization_token()["authorizationData"][0]
    assert token["proxyEndpoint"] == f"http://{host}"
    # When the data plane is asked with that Host, then it answers from that registry
    with domain_server.http() as client:
        listed = client.get("/v2/hosted/app/tags/list", headers={"Host": host})
        assert listed.status_code == 200
        assert listed.json()["name"] == "hosted/app"
        # and another region's host (or the plain address) does not see the repository
        other = f"000000000000.dkr.ecr.us-east-1.{DOMAIN}:{domain_server.port}"
        assert client.get("/v2/hosted/app/tags/list", headers={"Host": other}).status_code == 404
        assert client.get("/v2/hosted/app/tags/list").status_code == 404


def test_put_image_refuses_missing_layers_by_default(ecr: object, new_repository: str) -> None:
    with pytest.raises(ClientError) as refused:
        ecr.put_image(  # type: ignore[attr-defined]
            repositoryName=new_repository, imageManifest=fabricated_manifest(), imageTag="v1"
        )
    assert refused.value.response["Error"]["Code"] == "LayersNotFoundException"


def test_relaxed_references_accept_fabricated_manifests(relaxed_server: EcrdServer) -> None:
    # Given a server with strict_references off (what mock-era test suites need)
    ecr = ecr_client(relaxed_server)
    ecr.create_repository(repositoryName="mocked/app")
    # When a manifest whose layers were never uploaded is put
    put = ecr.put_image(
        repositoryName="mocked/app", imageManifest=fabricated_manifest(), imageTag="v1"
    )
    # Then it is stored and described like any other image
    [detail] = ecr.describe_images(repositoryName="mocked/app")["imageDetails"]
    assert detail["imageDigest"] == put["image"]["imageId"]["imageDigest"]
    assert detail["imageTags"] == ["v1"]
    assert detail["imageSizeInBytes"] == 11


# Behind a TLS-terminating proxy: public_url

PUBLIC_URL = "https://registry.example.test"


@pytest.fixture
def proxied_server(tmp_path: Path) -> Iterator[EcrdServer]:
    instance = EcrdServer(tmp_path / "data", environment={"ECRD_PUBLIC_URL": PUBLIC_URL})
    instance.start()
    yield instance
    instance.stop()


def test_public_url_makes_every_address_clients_see_https(proxied_server: EcrdServer) -> None:
    # given ecrd listening on plain HTTP behind a proxy that serves it as https://
    ecr = proxied_server.ecr()
    # when a client asks for a login and a repository
    login = ecr.get_authorization_token()["authorizationData"][0]
    created = ecr.create_repository(repositoryName="proxied/app")["repository"]
    # then the endpoint is the https URL (the ECR credential helper refuses anything else)
    assert login["proxyEndpoint"] == PUBLIC_URL
    assert created["repositoryUri"] == "registry.example.test/proxied/app"
    # and the data plane's challenge names the https realm, as the proxy forwards the Host
    challenge = httpx.get(
        f"{proxied_server.url}/v2/", headers={"Host": "registry.example.test"}, timeout=30
    )
    assert challenge.status_code == 401
    assert challenge.headers["WWW-Authenticate"] == (
        'Basic realm="https://registry.example.test",service="ecr.amazonaws.com"'
    )
