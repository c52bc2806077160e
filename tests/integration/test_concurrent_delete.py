"""A repository deleted with `force` while pushes into it are running: every push either
finishes before the delete or fails cleanly (NAME_UNKNOWN, BLOB_UPLOAD_UNKNOWN,
RepositoryNotFoundException), never a 500, and no bytes are left without a row.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.conftest import EcrdServer, basic_login
from tests.oci.helpers import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, encode

PUSHERS = 6
CHUNK = b"\x42" * (256 * 1024)
CHUNKS_PER_BLOB = 8
# How long the pushers go on after the delete: the pushes under way when it lands fail within
# the first fraction of a second; every one started after it is refused at its first request.
RUN_SECONDS = 1.0
MAX_PUSHES_PER_THREAD = 200
# What a push that lost the race may answer; anything else is a bug.
CLEAN_FAILURES = {"NAME_UNKNOWN", "BLOB_UPLOAD_UNKNOWN", "MANIFEST_BLOB_UNKNOWN"}


@pytest.fixture(scope="module")
def no_create_on_push_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EcrdServer]:
    # Without create-on-push, a deleted repository stays deleted, so every push that comes
    # after the delete must fail, cleanly. One server for the module: each test races in a
    # repository of its own, and checks that it left nothing behind (`Leftovers`).
    instance = EcrdServer(
        tmp_path_factory.mktemp("no-create-on-push") / "data",
        environment={"ECRD_CREATE_ON_PUSH": "false"},
    )
    instance.start()
    yield instance
    instance.stop()


@dataclass(frozen=True)
class Leftovers:
    """What the store holds that no row accounts for: upload bytes, upload rows, and stored
    blobs without a blob row. On a store where every test so far passed, all three are empty;
    each test checks it added nothing, so that one test's failure is not every later one's."""

    upload_ids: frozenset[str]
    upload_rows: frozenset[str]
    unrecorded_blobs: frozenset[str]

    @classmethod
    def of(cls, server: EcrdServer) -> Leftovers:
        recorded = {row[0] for row in server.metadata_query("SELECT digest FROM blobs")}
        return cls(
            frozenset(server.stored_upload_ids()),
            frozenset(row[0] for row in server.metadata_query("SELECT id FROM uploads")),
            frozenset(server.stored_blob_digests() - recorded),
        )

    def assert_nothing_added(self, server: EcrdServer) -> None:
        """No upload bytes or rows, and no bytes without a blob row, beyond these."""
        now = Leftovers.of(server)
        assert now.upload_ids - self.upload_ids == set()
        assert now.upload_rows - self.upload_rows == set()
        added = now.unrecorded_blobs - self.unrecorded_blobs
        assert added == set(), added


def slow_body(seed: int) -> Iterator[bytes]:
    """A layer sent in pieces with pauses, so that deletes land in the middle of it."""
    for number in range(CHUNKS_PER_BLOB):
        time.sleep(0.01)
        yield CHUNK[:-8] + seed.to_bytes(4, "big") + number.to_bytes(4, "big")


def layer_of(seed: int) -> bytes:
    return b"".join(slow_body_pieces(seed))


def slow_body_pieces(seed: int) -> list[bytes]:
    return [
        CHUNK[:-8] + seed.to_bytes(4, "big") + number.to_bytes(4, "big")
        for number in range(CHUNKS_PER_BLOB)
    ]


class Pusher(threading.Thread):
    """Pushes images (chunked layer, config, manifest) until told to stop; records every
    answer that was not a success."""

    def __init__(self, server: EcrdServer, repository: str, number: int) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.repository = repository
        self.number = number
        self.stop = threading.Event()
        self.failures: list[tuple[int, str]] = []
        self.successes = 0

    def run(self) -> None:
        with self.server.http() as client:
            for push in range(MAX_PUSHES_PER_THREAD):
                if self.stop.is_set():
                    return
                self.push_once(client, self.number * 1000 + push)

    def record(self, response: httpx.Response) -> bool:
        if response.status_code < 300:
            return True
        code = ""
        if response.headers.get("content-type", "").startswith("application/json"):
            code = response.json()["errors"][0]["code"]
        self.failures.append((response.status_code, code))
        return False

    def push_once(self, client: httpx.Client, seed: int) -> None:
        base = f"/v2/{self.repository}"
        started = client.post(f"{base}/blobs/uploads/")
        if not self.record(started):
            return
        location = started.headers["Location"]
        patched = client.patch(
            location, content=slow_body(seed), headers={"Content-Type": "application/octet-stream"}
        )
        if not self.record(patched):
            return
        layer_digest = "sha256:" + hashlib.sha256(layer_of(seed)).hexdigest()
        finished = client.put(location, params={"digest": layer_digest})
        if not self.record(finished):
            return
        config = b'{"seed":%d}' % seed
        config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
        pushed_config = client.post(
            f"{base}/blobs/uploads/", params={"digest": config_digest}, content=config
        )
        if not self.record(pushed_config):
            return
        manifest = encode(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
                "layers": [
                    {
                        "mediaType": OCI_LAYER,
                        "digest": layer_digest,
                        "size": CHUNKS_PER_BLOB * len(CHUNK),
                    }
                ],
            }
        )
        put = client.put(
            f"{base}/manifests/t{seed}", content=manifest, headers={"Content-Type": OCI_MANIFEST}
        )
        if self.record(put):
            self.successes += 1


def test_pushes_racing_a_forced_delete_fail_cleanly_and_leave_no_orphan_bytes(
    no_create_on_push_server: EcrdServer,
) -> None:
    server = no_create_on_push_server
    ecr = server.ecr()
    repository = "race/deleted"
    ecr.create_repository(repositoryName=repository)
    before = Leftovers.of(server)
    # given pushers streaming images into the repository
    pushers = [Pusher(server, repository, number) for number in range(PUSHERS)]
    for pusher in pushers:
        pusher.start()
    deadline = time.monotonic() + 30
    while sum(p.successes for p in pushers) < PUSHERS and time.monotonic() < deadline:
        time.sleep(0.05)
    # when the repository is deleted with force while they push
    ecr.delete_repository(repositoryName=repository, force=True)
    time.sleep(RUN_SECONDS)
    for pusher in pushers:
        pusher.stop.set()
    for pusher in pushers:
        pusher.join(timeout=60)
        assert not pusher.is_alive()

    # then every push that did not succeed failed with a clean "not there" answer
    failures = [failure for pusher in pushers for failure in pusher.failures]
    assert failures, "no push ran into the delete"
    assert all(status < 500 for status, _code in failures), failures
    assert {code for _status, code in failures} <= CLEAN_FAILURES, failures
    # and the API says the repository is gone too
    with pytest.raises(ClientError) as raised:
        ecr.describe_images(repositoryName=repository)
    assert raised.value.response["Error"]["Code"] == "RepositoryNotFoundException"
    # and nothing is left without a row: no upload bytes, and every stored blob is recorded
    before.assert_nothing_added(server)


# The same race, made certain over the wire: a request whose body is held back until the
# repository is gone (it was looked up and authorized when the request began).


class HeldBody:
    """A request body that sends its first part, then waits until released."""

    def __init__(self, first: bytes, rest: bytes) -> None:
        self.first = first
        self.rest = rest
        self.started = threading.Event()
        self.release = threading.Event()

    def __iter__(self) -> Iterator[bytes]:
        yield self.first
        self.started.set()
        if not self.release.wait(timeout=30):
            raise RuntimeError("the body was never released")
        yield self.rest


def held_request(
    server: EcrdServer, method: str, path: str, body: HeldBody, **options: object
) -> tuple[threading.Thread, list[httpx.Response]]:
    answers: list[httpx.Response] = []

    # Not server.http(): its auth reads the whole body first (to sign API calls), which would
    # hold the request back until the body is released.
    login = {"Authorization": f"Basic {basic_login(server)}"}

    def send() -> None:
        with httpx.Client(base_url=server.url, timeout=60, headers=login) as client:
            answers.append(client.request(method, path, content=iter(body), **options))  # type: ignore[arg-type]

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread, answers


# Time for the server to read the head and authorize the request (the repository lookup)
# after the first part of the body went out.
ADMISSION_SECONDS = 0.5


@pytest.mark.parametrize("step", ["patch", "monolithic", "finish", "manifest"])
def test_a_push_whose_repository_is_deleted_mid_request_is_name_unknown(
    no_create_on_push_server: EcrdServer, step: str
) -> None:
    server = no_create_on_push_server
    ecr = server.ecr()
    repository = f"race/held-{step}"
    ecr.create_repository(repositoryName=repository)
    before = Leftovers.of(server)
    base = f"/v2/{repository}"
    layer = b"held layer " * 10_000
    layer_digest = "sha256:" + hashlib.sha256(layer).hexdigest()
    body = HeldBody(layer[:50_000], layer[50_000:])
    with server.http() as client:
        location = client.post(f"{base}/blobs/uploads/").headers["Location"]
        if step == "patch":
            thread, answers = held_request(server, "PATCH", location, body)
        elif step == "monolithic":
            thread, answers = held_request(
                server, "POST", f"{base}/blobs/uploads/", body, params={"digest": layer_digest}
            )
        elif step == "finish":
            thread, answers = held_request(
                server, "PUT", location, body, params={"digest": layer_digest}
            )
        else:
            config = b"{}"
            for blob in (config, layer):
                digest = "sha256:" + hashlib.sha256(blob).hexdigest()
                pushed = client.post(
                    f"{base}/blobs/uploads/", params={"digest": digest}, content=blob
                )
                assert pushed.status_code == 201, pushed.text
            manifest = encode(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": {
                        "mediaType": OCI_CONFIG,
                        "digest": "sha256:" + hashlib.sha256(config).hexdigest(),
                        "size": len(config),
                    },
                    "layers": [
                        {"mediaType": OCI_LAYER, "digest": layer_digest, "size": len(layer)}
                    ],
                }
            )
            body = HeldBody(manifest[:20], manifest[20:])
            thread, answers = held_request(
                server, "PUT", f"{base}/manifests/v1", body,
                headers={"Content-Type": OCI_MANIFEST},
            )  # fmt: skip
        # given the request under way, authorized against the repository
        assert body.started.wait(timeout=30)
        time.sleep(ADMISSION_SECONDS)
        # when the repository is deleted with force, and the rest of the body arrives
        ecr.delete_repository(repositoryName=repository, force=True)
        body.release.set()
        thread.join(timeout=60)
        # then the push is told the repository is gone, not a server error
        assert answers, "the request never answered"
        answer = answers[0]
        assert answer.status_code == 404, answer.text
        assert answer.json()["errors"][0]["code"] == "NAME_UNKNOWN"
    # and nothing is left of it: no upload bytes or rows, no bytes without a blob row
    before.assert_nothing_added(server)
