"""The oras Python client against ecrd: artifacts pushed and pulled, and referrers."""

from __future__ import annotations

import hashlib
import json
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import httpx
import oras.client  # type: ignore[import-untyped]
import oras.decorator  # type: ignore[import-untyped]
import oras.oci  # type: ignore[import-untyped]
import pytest

from tests.conftest import EcrdServer
from tests.integration.helpers import OCI_INDEX, OCI_MANIFEST, manifest_digest, sha256_digest

TEXT_TYPE = "text/plain"
SIGNATURE_TYPE = "application/vnd.example.signature.v1+json"
SBOM_TYPE = "application/vnd.example.sbom.v1+json"


def _refuse_to_retry(seconds: float) -> NoReturn:
    raise AssertionError(f"oras wanted to retry a failed request (after {seconds}s)")


@pytest.fixture
def oras_client(server: EcrdServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """An oras client on plain HTTP that fails at once where it would sleep and retry."""
    monkeypatch.setattr(oras.decorator, "time", types.SimpleNamespace(sleep=_refuse_to_retry))
    registry = oras.client.OrasClient(hostname=server.host, insecure=True, auth_backend="basic")
    registry.auth.set_basic_auth("AWS", server.registry_password())
    yield registry
    registry.session.close()


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _push(
    registry: Any, target: str, files: list[str], **options: Any
) -> tuple[str, dict[str, Any]]:
    """Push with oras; return the pushed manifest's digest (from the response) and content."""
    response = registry.push(
        target=target, files=files, disable_path_validation=True, quiet=True, **options
    )
    assert response.status_code == 201, response.text
    digest = response.headers["Docker-Content-Digest"]
    return digest, registry.get_manifest(target)


def test_push_file_and_pull_it_back_identical(
    oras_client: Any, server: EcrdServer, client: httpx.Client, repository_name: str, tmp_path: Path
) -> None:
    # given a file on disk
    data = b"hello from an oras artifact\n" * 50
    artifact = _write(tmp_path / "push" / "greeting.txt", data)
    target = f"{server.host}/{repository_name}:v1"
    # when oras pushes it as an artifact and pulls it into an empty folder
    digest, manifest = _push(oras_client, target, [f"{artifact}:{TEXT_TYPE}"])
    pulled = oras_client.pull(target=target, outdir=str(tmp_path / "pull"))
    # then the same file comes back, byte for byte, under its title
    assert [Path(path).name for path in pulled] == ["greeting.txt"]
    assert Path(pulled[0]).read_bytes() == data
    # and the manifest describes it as pushed, under the digest the registry reported
    assert manifest["mediaType"] == OCI_MANIFEST
    [layer] = manifest["layers"]
    assert layer["mediaType"] == TEXT_TYPE
    assert layer["digest"] == sha256_digest(data)
    assert layer["size"] == len(data)
    assert layer["annotations"]["org.opencontainers.image.title"] == "greeting.txt"
    assert manifest_digest(client, repository_name, "v1") == digest
    assert oras_client.get_tags(f"{server.host}/{repository_name}") == ["v1"]


def test_chunked_push_of_a_larger_file_pulls_back_identical(
    oras_client: Any, server: EcrdServer, repository_name: str, tmp_path: Path
) -> None:
    # given a file several chunks long, with a short last chunk
    data = b"".join(hashlib.sha256(str(i).encode()).digest() for i in range(10_000))[:300_001]
    artifact = _write(tmp_path / "push" / "data.bin", data)
    target = f"{server.host}/{repository_name}:chunked"
    # when oras uploads it with POST, several PATCHes and a closing PUT
    _push(
        oras_client,
        target,
        [f"{artifact}:application/octet-stream"],
        do_chunked=True,
        chunk_size=64 * 1024,
    )
    pulled = oras_client.pull(target=target, outdir=str(tmp_path / "pull"))
    # then the pulled file is the one pushed
    assert Path(pulled[0]).read_bytes() == data


def test_push_directory_pulls_back_as_the_same_tree(
    oras_client: Any, server: EcrdServer, repository_name: str, tmp_path: Path
) -> None:
    # given a folder of two files
    folder = tmp_path / "push" / "bundle"
    _write(folder / "a.txt", b"first file\n")
    _write(folder / "nested" / "b.txt", b"second file\n")
    target = f"{server.host}/{repository_name}:dir"
    # when oras pushes the folder (as a tar+gzip layer) and pulls it back
    _push(oras_client, target, [str(folder)])
    oras_client.pull(target=target, outdir=str(tmp_path / "pull"))
    # then the same tree is extracted
    pulled = tmp_path / "pull" / "bundle"
    assert (pulled / "a.txt").read_bytes() == b"first file\n"
    assert (pulled / "nested" / "b.txt").read_bytes() == b"second file\n"


def test_attached_referrer_is_listed_and_pullable(
    oras_client: Any, server: EcrdServer, client: httpx.Client, repository_name: str, tmp_path: Path
) -> None:
    # given an artifact in the registry
    subject_target = f"{server.host}/{repository_name}:v1"
    subject_file = _write(tmp_path / "push" / "app.txt", b"the application\n")
    subject_digest, _ = _push(oras_client, subject_target, [f"{subject_file}:{TEXT_TYPE}"])
    subject_size = len(client.get(f"/v2/{repository_name}/manifests/{subject_digest}").content)
    subject = oras.oci.Subject(mediaType=OCI_MANIFEST, digest=subject_digest, size=subject_size)
    # when oras pushes a signature whose manifest names it as subject (config type = artifact type)
    config = _write(tmp_path / "push" / "config.json", b"{}")
    signature = _write(tmp_path / "push" / "signature.sig", b"signed by the tests\n")
    response = oras_client.push(
        target=f"{server.host}/{repository_name}:signature",
        files=[f"{signature}:application/octet-stream"],
        manifest_config=f"{config}:{SIGNATURE_TYPE}",
        subject=subject,
        disable_path_validation=True,
        quiet=True,
    )
    # then the registry accepts it and says it processed the subject
    assert response.status_code == 201, response.text
    signature_digest = response.headers["Docker-Content-Digest"]
    assert response.headers.get("OCI-Subject") == subject_digest
    # and the referrers API lists it as an OCI index descriptor with its artifact type
    referrers = client.get(f"/v2/{repository_name}/referrers/{subject_digest}")
    assert referrers.status_code == 200
    assert referrers.headers["Content-Type"].startswith(OCI_INDEX)
    index = referrers.json()
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == OCI_INDEX
    [descriptor] = index["manifests"]
    assert descriptor["digest"] == signature_digest
    assert descriptor["mediaType"] == OCI_MANIFEST
    assert descriptor["artifactType"] == SIGNATURE_TYPE
    stored = client.get(f"/v2/{repository_name}/manifests/{signature_digest}").content
    assert descriptor["size"] == len(stored)
    assert json.loads(stored)["subject"]["digest"] == subject_digest
    # and oras can pull the referrer by the digest the referrers API gave
    pulled = oras_client.pull(
        target=f"{server.host}/{repository_name}@{descriptor['digest']}",
        outdir=str(tmp_path / "pull"),
    )
    assert [Path(path).read_bytes() for path in pulled] == [b"signed by the tests\n"]


def test_referrers_filter_by_artifact_type(
    oras_client: Any, server: EcrdServer, client: httpx.Client, repository_name: str, tmp_path: Path
) -> None:
    # given an artifact with two referrers of different artifact types
    subject_file = _write(tmp_path / "push" / "app.txt", b"the application\n")
    subject_digest, _ = _push(
        oras_client, f"{server.host}/{repository_name}:v1", [f"{subject_file}:{TEXT_TYPE}"]
    )
    subject_size = len(client.get(f"/v2/{repository_name}/manifests/{subject_digest}").content)
    subject = oras.oci.Subject(mediaType=OCI_MANIFEST, digest=subject_digest, size=subject_size)
    config = _write(tmp_path / "push" / "config.json", b"{}")
    pushed: dict[str, str] = {}
    for artifact_type, name in ((SIGNATURE_TYPE, "signature"), (SBOM_TYPE, "sbom")):
        payload = _write(tmp_path / "push" / f"{name}.bin", f"{name} payload".encode())
        response = oras_client.push(
            target=f"{server.host}/{repository_name}:{name}",
            files=[f"{payload}:application/octet-stream"],
            manifest_config=f"{config}:{artifact_type}",
            subject=subject,
            disable_path_validation=True,
            quiet=True,
        )
        assert response.status_code == 201, response.text
        pushed[artifact_type] = response.headers["Docker-Content-Digest"]
    # when the referrers are listed without a filter and then filtered to one type
    url = f"/v2/{repository_name}/referrers/{subject_digest}"
    everything = client.get(url)
    only_sboms = client.get(url, params={"artifactType": SBOM_TYPE})
    # then the unfiltered list holds both, and the filtered one only the SBOM, saying so
    assert {d["digest"]: d["artifactType"] for d in everything.json()["manifests"]} == {
        digest: artifact_type for artifact_type, digest in pushed.items()
    }
    assert [d["digest"] for d in only_sboms.json()["manifests"]] == [pushed[SBOM_TYPE]]
    assert only_sboms.headers.get("OCI-Filters-Applied") == "artifactType"


def test_referrers_of_a_digest_without_any_is_an_empty_index(
    client: httpx.Client, repository_name: str, oras_client: Any, server: EcrdServer, tmp_path: Path
) -> None:
    # given an artifact nothing refers to
    artifact = _write(tmp_path / "push" / "alone.txt", b"alone\n")
    digest, _ = _push(
        oras_client, f"{server.host}/{repository_name}:v1", [f"{artifact}:{TEXT_TYPE}"]
    )
    # when its referrers are listed
    response = client.get(f"/v2/{repository_name}/referrers/{digest}")
    # then the answer is 200 with an empty image index (not 404)
    assert response.status_code == 200
    assert response.json() == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}


def test_oras_delete_tag_removes_the_tag(
    oras_client: Any, server: EcrdServer, client: httpx.Client, repository_name: str, tmp_path: Path
) -> None:
    # given an artifact under a tag
    artifact = _write(tmp_path / "push" / "doomed.txt", b"doomed\n")
    target = f"{server.host}/{repository_name}:v1"
    digest, _ = _push(oras_client, target, [f"{artifact}:{TEXT_TYPE}"])
    # when oras deletes the tag (HEAD for the digest, then DELETE by digest)
    deleted = oras_client.delete_tag(f"{server.host}/{repository_name}", "v1")
    # then the manifest and the tag are gone
    assert deleted is True
    assert client.get(f"/v2/{repository_name}/manifests/{digest}").status_code == 404
    assert client.get(f"/v2/{repository_name}/manifests/v1").status_code == 404
