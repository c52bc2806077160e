"""Several `ecrd serve` processes over one store behave as one registry.

Two deployments, each three processes on three ports:
- PostgreSQL + S3: metadata in one PostgreSQL database, blobs in one bucket of an S3-protocol
  server (moto) with GETs redirected to presigned URLs, and no folder shared between them;
- SQLite + filesystem: one data folder shared by processes of one host.

Every test names its stores itself, so the file runs in the SQLite pass only (it runs both).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from botocore.exceptions import ClientError

from ecrd.sealing import new_key
from tests.aws.images_helpers import new_image
from tests.conftest import (
    EcrdServer,
    new_postgres_database,
    require_postgres,
    session_s3_server,
)
from tests.integration.conftest import Skopeo
from tests.integration.docker_engine import Docker, load_image, output_tail
from tests.integration.helpers import layout_blobs
from tests.oci_layouts import OCI_MANIFEST, Layout

pytestmark = pytest.mark.metadata_independent

PROCESSES = 3
# How often a server's job runner looks for due jobs (JobRunner's default).
JOB_POLL_SECONDS = 1.0
MiB = 1024 * 1024


def store_environment(kind: str, shared_data: Path) -> tuple[dict[str, str], str | None]:
    """The settings of a deployment's stores, and its bucket (None for the filesystem)."""
    if kind == "sqlite+filesystem":
        return {"ECRD_DATABASE_URL": f"sqlite:///{shared_data / 'metadata.db'}"}, None
    require_postgres()
    s3 = session_s3_server()
    bucket = s3.create_bucket()
    environment = {
        **s3.environment(),
        "ECRD_DATABASE_URL": new_postgres_database(),
        "ECRD_BLOB_STORE": "s3",
        "ECRD_S3_BUCKET": bucket,
        "ECRD_S3_ENDPOINT_URL": s3.endpoint_url,
        "ECRD_S3_REDIRECT": "true",
        # Processes with data folders of their own share the sealing keys as a setting.
        "ECRD_SEALING_KEYS": new_key().line(),
    }
    return environment, bucket


class Cluster:
    """PROCESSES servers over one metadata store and one blob store."""

    def __init__(self, kind: str, root: Path) -> None:
        self.kind = kind
        shared_data = root / "shared-data"
        environment, bucket = store_environment(kind, shared_data)
        # The replication job ticks once at the first start, not again during a test.
        environment = {
            **environment,
            "ECRD_REPLICATION_INTERVAL_SECONDS": "3600",
            "ECRD_JOB_POLL_SECONDS": str(JOB_POLL_SECONDS),
        }
        self.servers = [
            EcrdServer(
                root / f"process-{index}" if kind == "postgresql+s3" else shared_data,
                environment=environment,
            )
            for index in range(PROCESSES)
        ]
        for index, server in enumerate(self.servers):
            # Each process logs to its own file, even where they share a data folder.
            server.log_path = root / f"process-{index}.log"
            server.s3_bucket = bucket

    def start(self) -> None:
        # All at once, as a deployment starts them: migrations and first keys happen once.
        threads = [threading.Thread(target=server.start) for server in self.servers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        for server in self.servers:
            if server.process is None:
                raise RuntimeError(f"a process did not start: {server.log_path.read_text()}")

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


@pytest.fixture(params=["postgresql+s3", "sqlite+filesystem"])
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    instance = Cluster(request.param, tmp_path)
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()


def client(server: EcrdServer, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.url,
        auth=("AWS", token),
        timeout=60,
        follow_redirects=True,
    )


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_processes_started_at_once_share_one_root_key_and_one_signing_key(
    cluster: Cluster,
) -> None:
    # then there is one signing key and the bootstrap key exists once
    first = cluster.servers[0]
    assert [row[0] for row in first.metadata_query("SELECT generation FROM signing_keys")] == [1]
    assert first.metadata_query("SELECT count(*) FROM access_keys")[0][0] == 1
    # and a token issued by one process is accepted by every other
    token = first.registry_password()
    for server in cluster.servers:
        assert client(server, token).get("/v2/").status_code == 200
    # and each background job, due at once on the new store, ran once between them
    runs = "SELECT name, trigger, outcome FROM job_runs ORDER BY name"
    deadline = time.monotonic() + 30
    while len(first.metadata_query(runs)) < 7 and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(JOB_POLL_SECONDS * 1.5)  # every process has polled again since
    assert first.metadata_query(runs) == [
        ("garbage_collection", "schedule", "succeeded"),
        ("lifecycle", "schedule", "succeeded"),
        ("replication", "schedule", "succeeded"),
        ("scanning", "schedule", "succeeded"),
        ("signing", "schedule", "succeeded"),
        ("signing_key_rotation", "schedule", "succeeded"),
        ("upload_sweep", "schedule", "succeeded"),
    ]


def test_an_upload_started_on_one_process_is_continued_on_another_and_finished_on_a_third(
    cluster: Cluster,
) -> None:
    a, b, c = cluster.servers
    token = a.registry_password()
    # chunks below, across and above S3's 5 MiB part minimum
    chunks = [os.urandom(3 * MiB), os.urandom(9 * MiB + 123), os.urandom(MiB // 2)]
    data = b"".join(chunks)
    repository = f"scale/{uuid.uuid4().hex[:8]}"
    a.ecr().create_repository(repositoryName=repository)

    # given an upload started on A
    started = client(a, token).post(f"/v2/{repository}/blobs/uploads/")
    assert started.status_code == 202, started.text
    location = started.headers["location"]
    # when its first chunks go to B and its last chunk and close go to C
    offset = 0
    for server, chunk in zip((b, b), chunks[:2], strict=True):
        patched = client(server, token).patch(
            location,
            content=chunk,
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
            },
        )
        assert patched.status_code == 202, patched.text
        offset += len(chunk)
        assert patched.headers["range"] == f"0-{offset - 1}"
        location = patched.headers["location"]
    # (C knows how far the upload got without having seen any of it)
    status = client(c, token).get(location)
    assert (status.status_code, status.headers["range"]) == (204, f"0-{offset - 1}")
    closed = client(c, token).put(
        location,
        params={"digest": digest_of(data)},
        content=chunks[2],
        headers={"Content-Type": "application/octet-stream"},
    )
    assert closed.status_code == 201, closed.text

    # then every process serves the whole blob, byte for byte, and its size without reading it
    for server in cluster.servers:
        with client(server, token) as http:
            head = http.head(f"/v2/{repository}/blobs/{digest_of(data)}")
            assert head.headers["content-length"] == str(len(data))
            body = http.get(f"/v2/{repository}/blobs/{digest_of(data)}").content
            assert hashlib.sha256(body).hexdigest() == digest_of(data).partition(":")[2]
            ranged = http.get(
                f"/v2/{repository}/blobs/{digest_of(data)}", headers={"Range": "bytes=10-19"}
            )
            assert (ranged.status_code, ranged.content) == (206, data[10:20])
    # and nothing of the upload is left in the blob store
    assert a.stored_upload_ids() == set()
    assert a.metadata_query("SELECT count(*) FROM uploads")[0][0] == 0


def test_an_upload_whose_process_dies_mid_chunk_is_resumed_on_another_process(
    cluster: Cluster,
) -> None:
    a, b, c = cluster.servers
    token = b.registry_password()
    first, second = os.urandom(3 * MiB), os.urandom(10 * MiB)
    data = first + second
    repository = f"scale/{uuid.uuid4().hex[:8]}"
    b.ecr().create_repository(repositoryName=repository)
    # given an upload with one chunk stored through B
    with client(b, token) as http:
        location = http.post(f"/v2/{repository}/blobs/uploads/").headers["location"]
        patched = http.patch(
            location, content=first, headers={"Content-Type": "application/octet-stream"}
        )
        assert patched.status_code == 202, patched.text
        location = patched.headers["location"]
    # when A receives part of the next chunk and is killed before the chunk ends
    sent, killed = threading.Event(), threading.Event()

    def slow_body() -> Iterator[bytes]:
        yield second[: 4 * MiB]
        sent.set()
        killed.wait(timeout=60)
        yield b"x"  # a write on the dead connection ends the request

    def patch_on_a() -> None:
        with contextlib.suppress(httpx.HTTPError), client(a, token) as http:
            http.patch(
                location,
                content=slow_body(),
                headers={"Content-Type": "application/octet-stream"},
            )

    patcher = threading.Thread(target=patch_on_a)
    patcher.start()
    assert sent.wait(timeout=30)
    time.sleep(0.5)  # the bytes reach A and its blob store
    assert a.process is not None
    a.process.kill()
    a.process.wait(timeout=30)
    a.process = None
    killed.set()
    patcher.join(timeout=60)
    # then another process reports the upload where it was before A's chunk: that chunk was
    # never recorded
    status = client(c, token).get(location)
    assert (status.status_code, status.headers["range"]) == (204, f"0-{len(first) - 1}")
    # and the client resumes there on C, finishing with the digest of the whole blob
    closed = client(c, token).put(
        location,
        params={"digest": digest_of(data)},
        content=second,
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{len(first)}-{len(data) - 1}",
        },
    )
    assert closed.status_code == 201, closed.text
    pulled = client(b, token).get(f"/v2/{repository}/blobs/{digest_of(data)}").content
    assert hashlib.sha256(pulled).hexdigest() == digest_of(data).partition(":")[2]
    # and nothing of the upload is left in the blob store, the dead process's bytes included
    assert b.stored_upload_ids() == set()


# The filesystem store streams every blob itself.
@pytest.mark.parametrize("cluster", ["postgresql+s3"], indirect=True)
def test_with_s3_a_blob_get_redirects_to_a_presigned_url_and_the_api_hands_one_out(
    cluster: Cluster,
) -> None:
    a, b, _ = cluster.servers
    token = a.registry_password()
    repository = f"scale/{uuid.uuid4().hex[:8]}"
    data = os.urandom(4096)
    with client(a, token) as http:
        started = http.post(
            f"/v2/{repository}/blobs/uploads/", params={"digest": digest_of(data)}, content=data
        )
        assert started.status_code == 201, started.text
    # when B is asked for the blob without following redirects
    with httpx.Client(base_url=b.url, auth=("AWS", token), timeout=30) as http:
        answer = http.get(f"/v2/{repository}/blobs/{digest_of(data)}")
        head = http.head(f"/v2/{repository}/blobs/{digest_of(data)}")
    # then it answers 307 to the S3 server, whose presigned URL gives the bytes without
    # credentials; HEAD answers itself, with the size
    assert answer.status_code == 307, answer.text
    s3_url = answer.headers["location"]
    assert s3_url.startswith(session_s3_server().endpoint_url)
    assert httpx.get(s3_url, timeout=30).content == data
    assert (head.status_code, head.headers["content-length"]) == (200, str(len(data)))
    # and GetDownloadUrlForLayer hands out such a URL too, as ECR hands out S3's
    url = b.ecr().get_download_url_for_layer(
        repositoryName=repository, layerDigest=digest_of(data)
    )["downloadUrl"]
    assert url.startswith(session_s3_server().endpoint_url)
    assert httpx.get(url, timeout=30).content == data


def skopeo_environment(
    servers: list[EcrdServer], token: str, folder: Path, containers_config: dict[str, Path]
) -> dict[str, str]:
    """skopeo's environment, logged in to every server with one token."""
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo is not installed")
    auth_file = folder / "auth.json"
    login = base64.b64encode(f"AWS:{token}".encode()).decode()
    auth_file.write_text(
        json.dumps({"auths": {server.host: {"auth": login} for server in servers}})
    )
    return {
        **os.environ,
        "REGISTRY_AUTH_FILE": str(auth_file),
        "CONTAINERS_REGISTRIES_CONF": str(containers_config["registries"]),
    }


def image_larger_than_a_part(folder: Path) -> Layout:
    """An OCI layout tagged v1 whose layer is larger than an S3 part."""
    layout = Layout(folder)
    layout.tag(layout.add_image(layer_bytes=7 * MiB, seed=uuid.uuid4().hex), "v1")
    return layout


def test_an_image_pushed_to_one_process_is_pulled_from_another_with_skopeo(
    cluster: Cluster,
    tmp_path: Path,
    containers_config: dict[str, Path],
) -> None:
    a, b, c = cluster.servers
    environment = skopeo_environment(
        cluster.servers, a.registry_password(), tmp_path, containers_config
    )
    layout = image_larger_than_a_part(tmp_path / "image")
    repository = f"scale/{uuid.uuid4().hex[:8]}"
    # when it is pushed to A and pulled from B and from C
    Skopeo(a, containers_config["policy"], environment).push(layout.root, "v1", repository, "v1")
    for server in (b, c):
        copy = tmp_path / f"copy-{server.port}"
        Skopeo(server, containers_config["policy"], environment).pull(repository, "v1", copy, "v1")
        # then the pulled blobs are the pushed ones, byte for byte
        assert layout_blobs(copy) == layout_blobs(layout.root)


def test_an_image_the_docker_engine_pushed_to_one_process_is_pulled_from_another(
    cluster: Cluster, docker: Docker, skopeo_policy: Path, tmp_path: Path
) -> None:
    a, b, _ = cluster.servers
    token = a.registry_password()
    # given an image in the engine whose layer is larger than an S3 part, pushed to A
    image = load_image(docker, tmp_path, skopeo_policy, layer_bytes=7 * MiB)
    repository = f"scale/{uuid.uuid4().hex[:8]}"
    for server in (a, b):
        docker.login(server.host, token)
    docker("tag", image.local_name, f"{a.host}/{repository}:v1")
    digest = docker.push(f"{a.host}/{repository}:v1")
    docker("rmi", "--force", image.image_id)
    # when the engine pulls it from B (with S3, its layers come from presigned URLs)
    pulled = docker("pull", f"{b.host}/{repository}:v1")
    # then it is the same image, under the digest A stored
    assert f"Digest: {digest}" in pulled.stdout, output_tail(pulled)
    assert docker.image_id(f"{b.host}/{repository}:v1") == image.image_id


@pytest.mark.parametrize("kind", ["postgresql+s3", "sqlite+filesystem"])
def test_workers_on_one_port_push_and_pull_as_one_registry(
    kind: str, tmp_path: Path, containers_config: dict[str, Path]
) -> None:
    # given one server with three worker processes on one port
    environment, bucket = store_environment(kind, tmp_path / "data")
    server = EcrdServer(tmp_path / "data", ["--workers", "3"], environment=environment)
    server.s3_bucket = bucket
    server.start()
    try:
        skopeo = Skopeo(
            server,
            containers_config["policy"],
            skopeo_environment([server], server.registry_password(), tmp_path, containers_config),
        )
        layout = image_larger_than_a_part(tmp_path / "image")
        # when images are pushed and pulled several times (connections land on any worker)
        for round_number in range(3):
            repository = f"workers/{round_number}"
            skopeo.push(layout.root, "v1", repository, "v1")
            copy = tmp_path / f"copy-{round_number}"
            skopeo.pull(repository, "v1", copy, "v1")
            # then every pull gives the pushed bytes
            assert layout_blobs(copy) == layout_blobs(layout.root)
        # and the workers made one signing key between them
        assert len(server.metadata_query("SELECT generation FROM signing_keys")) == 1
    finally:
        server.stop()


def test_policy_and_repository_changes_on_one_process_apply_at_once_on_another(
    cluster: Cluster,
) -> None:
    a, b, _ = cluster.servers
    token = a.registry_password()
    repository = f"scale/{uuid.uuid4().hex[:8]}"
    a.ecr().create_repository(repositoryName=repository)
    user = a.create_key(user="puller", policies=[_allow("ecr:*")])
    user_token = a.registry_password(user)
    assert client(b, user_token).get(f"/v2/{repository}/tags/list").status_code == 200

    # when A sets a repository policy denying the user, then B refuses the user at once
    a.ecr().set_repository_policy(
        repositoryName=repository,
        policyText=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Deny",
                        "Principal": {"AWS": user.arn},
                        "Action": "ecr:*",
                    }
                ],
            }
        ),
    )
    assert client(b, user_token).get(f"/v2/{repository}/tags/list").status_code == 403
    # when A deletes the repository, then B says it is unknown at once
    a.ecr().delete_repository(repositoryName=repository, force=True)
    gone = client(b, token).get(f"/v2/{repository}/tags/list")
    assert gone.status_code == 404
    assert gone.json()["errors"][0]["code"] == "NAME_UNKNOWN"
    with pytest.raises(ClientError) as raised:
        b.ecr().describe_repositories(repositoryNames=[repository])
    assert raised.value.response["Error"]["Code"] == "RepositoryNotFoundException"


def test_concurrent_pushes_of_one_immutable_tag_to_two_processes_let_one_win(
    cluster: Cluster,
) -> None:
    a, b, _ = cluster.servers
    token = a.registry_password()
    repository = f"scale/{uuid.uuid4().hex[:8]}"
    a.ecr().create_repository(repositoryName=repository, imageTagMutability="IMMUTABLE")
    with client(a, token) as http:
        config = b"{}"
        stored = http.post(
            f"/v2/{repository}/blobs/uploads/", params={"digest": digest_of(config)}, content=config
        )
        assert stored.status_code == 201, stored.text
    for round_number in range(5):
        tag = f"v{round_number}"
        manifests = [_manifest(config, annotation=f"{tag}-{side}") for side in ("a", "b")]
        answers: list[httpx.Response] = []
        barrier = threading.Barrier(2)

        threads = [
            threading.Thread(
                target=_put_manifest_at_once,
                args=(server, token, f"/v2/{repository}/manifests/{tag}", manifest, barrier),
                kwargs={"answers": answers},
            )
            for server, manifest in zip((a, b), manifests, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        # then exactly one push wins and the other is told the tag is immutable
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses == [201, 400], [answer.text for answer in answers]
        refused = next(answer for answer in answers if answer.status_code == 400)
        assert refused.json()["errors"][0]["code"] == "TAG_INVALID"
        winner = next(answer for answer in answers if answer.status_code == 201)
        served = client(b, token).head(
            f"/v2/{repository}/manifests/{tag}", headers={"Accept": OCI_MANIFEST}
        )
        assert served.headers["docker-content-digest"] == winner.headers["docker-content-digest"]


def _put_manifest_at_once(
    server: EcrdServer,
    token: str,
    path: str,
    manifest: bytes,
    barrier: threading.Barrier,
    answers: list[httpx.Response],
) -> None:
    """PUT a manifest once every other thread at the barrier is ready to PUT too."""
    with client(server, token) as http:
        barrier.wait(timeout=30)
        answers.append(http.put(path, content=manifest, headers={"Content-Type": OCI_MANIFEST}))


def _manifest(config: bytes, annotation: str) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": digest_of(config),
                "size": len(config),
            },
            "layers": [],
            "annotations": {"round": annotation},
        }
    ).encode()


def _allow(action: str) -> dict[str, object]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": action, "Resource": "*"}],
    }


def test_pushes_to_every_process_are_replicated_once(cluster: Cluster) -> None:
    # given a replication rule, put through one process
    a, b, c = cluster.servers
    destination_region = "eu-west-3"
    account = a.ecr().describe_registry()["registryId"]
    a.ecr().put_replication_configuration(
        replicationConfiguration={
            "rules": [{"destinations": [{"registryId": account, "region": destination_region}]}]
        }
    )
    # when each process takes a push (each process's job run is nudged, one lease between them)
    pushed: dict[str, str] = {}
    for number, server in enumerate(cluster.servers):
        repository = f"scale-replicated/{uuid.uuid4().hex[:8]}-{number}"
        server.ecr().create_repository(repositoryName=repository)
        pushed[repository] = new_image(server.ecr(), repository, f"from process {number}", "v1")
    # then every image is replicated, seen from every process, one copy each
    deadline = time.monotonic() + 60
    for repository, digest in pushed.items():
        for server in (c, b, a):
            while True:
                found = server.ecr().describe_image_replication_status(
                    repositoryName=repository, imageId={"imageDigest": digest}
                )["replicationStatuses"]
                if found and found[0]["status"] != "IN_PROGRESS":
                    break
                assert time.monotonic() < deadline, found
                time.sleep(0.2)
            assert [s["status"] for s in found] == ["COMPLETE"]
        replica = b.ecr(region_name=destination_region).describe_images(repositoryName=repository)
        assert [image["imageDigest"] for image in replica["imageDetails"]] == [digest]
