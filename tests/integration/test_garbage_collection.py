"""Online garbage collection against a running server, on SQLite + filesystem and (in the
second pass) PostgreSQL + S3: what deleting images and repositories leaves goes back to the
store, a push racing the collector loses nothing, and the grace window keeps what was used
recently. Images are pushed with boto3 (ECR's layer API and PutImage) and pulled over /v2/."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Connection, select, update

from ecrd.blobs.filesystem import FilesystemBlobStore
from ecrd.blobs.s3 import S3BlobStore
from ecrd.blobs.store import BlobStore
from ecrd.metadata.database import Database
from ecrd.metadata.records import utcnow
from ecrd.metadata.schema import blobs, job_schedules, repository_blobs
from tests.aws.images_helpers import digest_of, image_manifest, put_image
from tests.conftest import START_TIMEOUT_SECONDS, EcrdServer, session_s3_server

MiB = 1024 * 1024
# The collector's window in the racing tests: a push's own new links are younger than this
# when a collection started after them computes its cutoff (`ecrd gc` takes about a second
# to start).
GRACE_SECONDS = 2


class FreshServers:
    """A server of its own for every test that asks (a collection covers the whole store, so
    no two tests may share one), each started in the background while the test before it
    runs, most of which is spent waiting for `ecrd gc`. `wanted` bounds how many are made
    ahead."""

    def __init__(self, folder: Path, wanted: int) -> None:
        self._folder = folder
        self._wanted = wanted
        self._made = 0
        self._starter = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        self._next: concurrent.futures.Future[EcrdServer] | None = None
        self._start_next()

    def _started(self, number: int) -> EcrdServer:
        folder = self._folder / f"server-{number}"
        folder.mkdir()
        instance = EcrdServer(folder / "data")
        instance.start()
        return instance

    def _start_next(self) -> None:
        self._next = None
        if self._made < self._wanted:
            self._next = self._starter.submit(self._started, self._made)
            self._made += 1

    def take(self) -> EcrdServer:
        """A started server no test has used; the next one starts meanwhile."""
        if self._next is None:
            self._wanted += 1
            self._start_next()
        assert self._next is not None
        upcoming = self._next
        self._start_next()
        return upcoming.result(timeout=START_TIMEOUT_SECONDS + 60)

    def close(self) -> None:
        """Stop the server started ahead that no test took, if any."""
        if self._next is not None:
            with contextlib.suppress(RuntimeError):  # one that did not start left nothing
                self._next.result(timeout=START_TIMEOUT_SECONDS + 60).stop()
        self._starter.shutdown(wait=True)


@pytest.fixture(scope="module")
def fresh_servers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FreshServers]:
    wanted = sum(
        1
        for item in request.session.items
        if isinstance(item, pytest.Function)
        and item.module is request.module
        and "gc_server" in item.fixturenames
    )
    servers = FreshServers(tmp_path_factory.mktemp("gc"), wanted)
    yield servers
    servers.close()


@pytest.fixture
def gc_server(fresh_servers: FreshServers) -> Iterator[EcrdServer]:
    """A server no other test used."""
    instance = fresh_servers.take()
    yield instance
    instance.stop()


def run_gc(server: EcrdServer, *arguments: str) -> dict[str, Any]:
    finished = server.ecrd_command("gc", "--json", *arguments)
    assert finished.returncode == 0, finished.stderr
    report: dict[str, Any] = json.loads(finished.stdout)
    return report


def blob_rows(server: EcrdServer) -> set[str]:
    return {row[0] for row in server.metadata_query("SELECT digest FROM blobs")}


def push(ecr: Any, repository: str, layer: bytes, tag: str = "v1") -> str:
    manifest = image_manifest(ecr, repository, layers=[layer], config=b'{"gc": "test"}')
    put_image(ecr, repository, manifest, tag)
    return digest_of(manifest)


def pulled_layer(server: EcrdServer, repository: str, tag: str) -> bytes:
    with server.http() as http:
        manifest = http.get(
            f"/v2/{repository}/manifests/{tag}",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        )
        assert manifest.status_code == 200, manifest.text
        layer = manifest.json()["layers"][0]
        blob = http.get(f"/v2/{repository}/blobs/{layer['digest']}", follow_redirects=True)
        assert blob.status_code == 200, blob.text
        assert digest_of(blob.content) == layer["digest"]
        return blob.content


def age_store(server: EcrdServer, seconds: float) -> None:
    """Move the times the collector's grace window runs from (a blob's and a link's creation,
    a link's release) `seconds` into the past, as if that long had passed with no push or
    pull, as `make_job_due` does for a schedule: rather than sleep through the window, a
    couple of seconds at every step. Only while the server is idle."""
    url = server.database_url or f"sqlite:///{(server.data_dir / 'metadata.db').resolve()}"
    shift = timedelta(seconds=seconds)

    def work(connection: Connection) -> None:
        stored = select(blobs.c.digest, blobs.c.created_at)
        for digest, created in connection.execute(stored).all():
            connection.execute(
                update(blobs).where(blobs.c.digest == digest).values(created_at=created - shift)
            )
        links = select(
            repository_blobs.c.repository_id,
            repository_blobs.c.blob_digest,
            repository_blobs.c.created_at,
            repository_blobs.c.released_at,
        )
        for repository_id, digest, created, released in connection.execute(links).all():
            connection.execute(
                update(repository_blobs)
                .where(
                    (repository_blobs.c.repository_id == repository_id)
                    & (repository_blobs.c.blob_digest == digest)
                )
                .values(
                    created_at=created - shift,
                    released_at=None if released is None else released - shift,
                )
            )

    async def shift_times() -> None:
        database = Database(url)
        try:
            await database.write(work)
        finally:
            await database.close()

    asyncio.run(shift_times())


def server_blob_store(server: EcrdServer) -> BlobStore:
    """The server's blob store, opened here as another process would."""
    if server.s3_bucket is None:
        return FilesystemBlobStore(server.data_dir)
    return S3BlobStore(server.s3_bucket, endpoint_url=session_s3_server().endpoint_url)


def test_ten_push_delete_gc_cycles_return_the_store_to_its_size(gc_server: EcrdServer) -> None:
    ecr = gc_server.ecr()
    ecr.create_repository(repositoryName="gc/racer")
    start_bytes, start_rows = gc_server.stored_blob_bytes(), blob_rows(gc_server)
    reclaimed = 0
    for cycle in range(10):
        repository = f"gc/cycle-{cycle}"
        ecr.create_repository(repositoryName=repository)
        layer = os.urandom(4 * MiB)
        push(ecr, repository, layer)
        assert gc_server.stored_blob_bytes() >= start_bytes + 4 * MiB
        # given the image deleted (by BatchDeleteImage, or with its repository), and past the
        # grace window
        if cycle % 2:
            ecr.delete_repository(repositoryName=repository, force=True)
        else:
            deleted = ecr.batch_delete_image(
                repositoryName=repository, imageIds=[{"imageTag": "v1"}]
            )
            assert deleted["failures"] == []
        age_store(gc_server, GRACE_SECONDS + 1)
        # when it is collected while another repository pushes the very same layer
        racer = threading.Thread(target=push, args=(gc_server.ecr(), "gc/racer", layer, "c"))
        collection = gc_server.ecrd_process("gc", "--json", "--grace", str(GRACE_SECONDS))
        racer.start()
        output, errors = collection.communicate(timeout=120)
        racer.join(timeout=120)
        assert collection.returncode == 0, errors
        assert not racer.is_alive()
        report = json.loads(output)
        reclaimed += report["blob_bytes"]
        # then the racing push lost nothing: its image pulls whole
        assert pulled_layer(gc_server, "gc/racer", "c") == layer
        assert blob_rows(gc_server) <= gc_server.stored_blob_digests()
        ecr.batch_delete_image(repositoryName="gc/racer", imageIds=[{"imageTag": "c"}])
    # and once the last image is past the window, a collection brings the store back to its
    # starting size, bytes and rows
    age_store(gc_server, GRACE_SECONDS + 1)
    report = run_gc(gc_server, "--grace", str(GRACE_SECONDS))
    reclaimed += report["blob_bytes"]
    assert gc_server.stored_blob_bytes() == start_bytes
    assert blob_rows(gc_server) == start_rows
    assert reclaimed >= 10 * 4 * MiB
    # and a collection with nothing to do removes nothing
    assert run_gc(gc_server, "--grace", "0")["blobs"] == 0


def test_each_cycle_gives_back_exactly_the_deleted_images_blobs(gc_server: EcrdServer) -> None:
    ecr = gc_server.ecr()
    start_bytes, start_rows = gc_server.stored_blob_bytes(), blob_rows(gc_server)
    for cycle in range(3):
        repository = f"gc/exact-{cycle}"
        ecr.create_repository(repositoryName=repository)
        layer = os.urandom(4 * MiB)
        push(ecr, repository, layer)
        if cycle % 2:
            ecr.delete_repository(repositoryName=repository, force=True)
        else:
            ecr.batch_delete_image(repositoryName=repository, imageIds=[{"imageTag": "v1"}])
        # with no grace window, its layer and config go, bytes and rows
        report = run_gc(gc_server, "--grace", "0")
        assert report["blobs"] == 2, report
        assert report["blob_bytes"] == 4 * MiB + len(b'{"gc": "test"}')
        # (a deleted repository's links went with it; a deleted image leaves its two)
        assert report["links"] == (0 if cycle % 2 else 2)
        assert gc_server.stored_blob_bytes() == start_bytes
        assert blob_rows(gc_server) == start_rows


def test_a_push_racing_the_collector_loses_nothing(gc_server: EcrdServer) -> None:
    ecr = gc_server.ecr()
    repository = "gc/raced"
    ecr.create_repository(repositoryName=repository)
    layer = os.urandom(2 * MiB)
    rounds = 6
    collections: list[dict[str, Any]] = []
    stop = threading.Event()

    def collect_all_the_time() -> None:
        # bounded: at most 40 collections, and never past the push loop
        for _ in range(40):
            if stop.is_set():
                return
            collections.append(run_gc(gc_server, "--grace", str(GRACE_SECONDS)))

    collector = threading.Thread(target=collect_all_the_time)
    collector.start()
    try:
        for number in range(rounds):
            # given the image deleted and past the grace window (its blobs unused), when the
            # same image is pushed again while the collector runs, then it is whole
            push(ecr, repository, layer, tag="current")
            assert pulled_layer(gc_server, repository, "current") == layer
            ecr.batch_delete_image(repositoryName=repository, imageIds=[{"imageTag": "current"}])
            time.sleep(GRACE_SECONDS + 0.2 + 0.3 * (number % 3))
    finally:
        stop.set()
        collector.join(timeout=300)
    assert not collector.is_alive()
    push(ecr, repository, layer, tag="final")
    assert pulled_layer(gc_server, repository, "final") == layer
    # the collector did take the deleted image's blobs while the pushes went on
    assert sum(report["blobs"] for report in collections) >= 2
    # and every blob row has its bytes
    assert blob_rows(gc_server) <= gc_server.stored_blob_digests()


def test_the_grace_window_keeps_what_was_used_recently(gc_server: EcrdServer) -> None:
    ecr = gc_server.ecr()
    repository = "gc/recent"
    ecr.create_repository(repositoryName=repository)
    layer = os.urandom(MiB)
    push(ecr, repository, layer)
    ecr.batch_delete_image(repositoryName=repository, imageIds=[{"imageTag": "v1"}])
    stored = gc_server.stored_blob_bytes()
    # given an image deleted just now, a collection with an hour's window keeps its blobs
    report = run_gc(gc_server, "--grace", "3600")
    assert (report["links"], report["blobs"]) == (0, 0)
    assert gc_server.stored_blob_bytes() == stored
    # and a client that finds the layer present (a push's HEAD) renews its window, so a
    # manifest put after a collection still finds it (4.5 s later)
    age_store(gc_server, 4.5)
    checked = ecr.batch_check_layer_availability(
        repositoryName=repository, layerDigests=[digest_of(layer)]
    )
    assert checked["layers"][0]["layerAvailability"] == "AVAILABLE"
    # (the config's link was not asked for: it goes; the layer's stays)
    assert run_gc(gc_server, "--grace", "4")["links"] == 1
    checked = ecr.batch_check_layer_availability(
        repositoryName=repository, layerDigests=[digest_of(layer), digest_of(b'{"gc": "test"}')]
    )
    availability = {layer["layerDigest"]: layer["layerAvailability"] for layer in checked["layers"]}
    assert availability == {digest_of(layer): "AVAILABLE"}
    assert [failure["failureCode"] for failure in checked["failures"]] == ["MissingLayerDigest"]
    push(ecr, repository, layer, tag="again")
    assert pulled_layer(gc_server, repository, "again") == layer


def test_a_dry_run_reports_and_changes_nothing(gc_server: EcrdServer) -> None:
    ecr = gc_server.ecr()
    repository = "gc/dry"
    ecr.create_repository(repositoryName=repository)
    push(ecr, repository, os.urandom(MiB))
    ecr.delete_repository(repositoryName=repository, force=True)
    stored, rows = gc_server.stored_blob_bytes(), blob_rows(gc_server)
    report = run_gc(gc_server, "--grace", "0", "--dry-run")
    assert report["dry_run"] is True
    assert report["blobs"] == 2
    assert report["blob_bytes"] == MiB + len(b'{"gc": "test"}')
    assert (gc_server.stored_blob_bytes(), blob_rows(gc_server)) == (stored, rows)
    # the text form says the same, for people
    finished = gc_server.ecrd_command("gc", "--grace", "0", "--dry-run")
    assert finished.returncode == 0, finished.stderr
    assert "blobs would remove: 2 (1.0 MiB)" in finished.stdout
    assert "would reclaim 1.0 MiB" in finished.stdout


def test_bytes_with_no_record_are_collected_after_the_window(
    gc_server: EcrdServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(64 * 1024)
    digest = digest_of(data)

    if gc_server.s3_bucket is not None:
        for name, value in session_s3_server().environment().items():
            monkeypatch.setenv(name, value)

    async def store_bytes_only() -> None:
        # what a process killed between committing a blob and recording it leaves
        store = server_blob_store(gc_server)
        try:
            state = await store.start_upload("crashed-upload")
            writer = await store.open_upload("crashed-upload", state, 0)
            await writer.write(data)
            state = await writer.close()
            await store.commit_upload("crashed-upload", state, digest)
            await store.abort_upload("crashed-upload", state)
        finally:
            store.close()

    asyncio.run(store_bytes_only())
    assert digest in gc_server.stored_blob_digests()
    assert digest not in blob_rows(gc_server)
    # within the window they stay (an upload may be about to record them)
    assert run_gc(gc_server, "--grace", "3600")["orphaned_blobs"] == 0
    assert digest in gc_server.stored_blob_digests()
    time.sleep(1.1)
    report = run_gc(gc_server, "--grace", "1")
    assert report["orphaned_blobs"] == 1
    assert report["orphaned_bytes"] == len(data)
    assert digest not in gc_server.stored_blob_digests()
    assert digest not in blob_rows(gc_server)


def test_untagged_images_go_only_when_asked(gc_server: EcrdServer) -> None:
    ecr = gc_server.ecr()
    repository = "gc/untagged"
    ecr.create_repository(repositoryName=repository)
    first = push(ecr, repository, os.urandom(1024), tag="moving")
    push(ecr, repository, os.urandom(1024), tag="moving")  # the first is untagged now
    # by default (as in ECR) an untagged image stays
    assert run_gc(gc_server, "--grace", "0")["untagged_images"] == 0
    images = ecr.describe_images(repositoryName=repository)["imageDetails"]
    assert first in {image["imageDigest"] for image in images}
    # asked to, the collector deletes it, and then its blobs
    report = run_gc(gc_server, "--grace", "0", "--delete-untagged")
    assert report["untagged_images"] == 1
    assert report["blobs"] == 1  # its layer; the config is shared with the tagged image
    images = ecr.describe_images(repositoryName=repository)["imageDetails"]
    assert [image.get("imageTags") for image in images] == [["moving"]]


def make_job_due(server: EcrdServer, name: str) -> None:
    """Move a job's next scheduled run to now, as if its interval had passed."""
    url = server.database_url or f"sqlite:///{(server.data_dir / 'metadata.db').resolve()}"

    async def update_schedule() -> int:
        database = Database(url)
        try:
            statement = (
                update(job_schedules)
                .where(job_schedules.c.name == name)
                .values(next_run_at=utcnow())
            )
            return await database.write(lambda connection: connection.execute(statement).rowcount)
        finally:
            await database.close()

    assert asyncio.run(update_schedule()) == 1


def test_the_scheduled_job_collects_and_metrics_count_it(tmp_path: Path) -> None:
    server = EcrdServer(
        tmp_path / "data",
        environment={"ECRD_GC_GRACE_SECONDS": "0", "ECRD_JOB_POLL_SECONDS": "0.5"},
    )
    server.start()
    try:
        ecr = server.ecr()
        ecr.create_repository(repositoryName="gc/scheduled")
        push(ecr, "gc/scheduled", os.urandom(MiB))
        ecr.delete_repository(repositoryName="gc/scheduled", force=True)
        assert len(blob_rows(server)) == 2
        # when the job's time comes, the server collects (it looks every few seconds)
        make_job_due(server, "garbage_collection")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and blob_rows(server):
            time.sleep(0.2)
        assert blob_rows(server) == set()
        # and its metrics count what it removed, once the run has ended
        counted = 'ecrd_background_job_items_total{item="blobs",job="garbage_collection"} 2.0'
        for _attempt in range(50):
            metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
            if counted in metrics:
                break
            time.sleep(0.2)
        assert counted in metrics
        listed = server.ecrd_command("jobs", "list")
        assert listed.returncode == 0, listed.stderr
        (line,) = [line for line in listed.stdout.splitlines() if "garbage_collection" in line]
        assert "blobs 2" in line
    finally:
        server.stop()


def test_a_lifecycle_run_then_a_collection_give_the_expired_images_bytes_back(
    gc_server: EcrdServer,
) -> None:
    ecr = gc_server.ecr()
    repository = "gc/lifecycle"
    ecr.create_repository(repositoryName=repository)
    start_bytes = gc_server.stored_blob_bytes()
    layers = [os.urandom(MiB + number) for number in range(5)]
    digests = [
        push(ecr, repository, layer, tag=f"v{number}") for number, layer in enumerate(layers)
    ]
    config_size = len(b'{"gc": "test"}')
    assert gc_server.stored_blob_bytes() == start_bytes + sum(map(len, layers)) + config_size
    # given a policy keeping the two newest of five images
    rule = {
        "rulePriority": 1,
        "description": "keep the two newest",
        "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 2},
        "action": {"type": "expire"},
    }
    ecr.put_lifecycle_policy(
        repositoryName=repository, lifecyclePolicyText=json.dumps({"rules": [rule]})
    )
    # when the policies are applied, two images are left
    applied = gc_server.ecrd_command("lifecycle", "run", "--repository", repository)
    assert applied.returncode == 0, applied.stderr
    left = {
        image["imageDigest"]
        for image in ecr.describe_images(repositoryName=repository)["imageDetails"]
    }
    assert left == set(digests[3:])
    # and a collection then gives the three expired layers' bytes back, and keeps the rest
    report = run_gc(gc_server, "--grace", "0")
    assert report["blobs"] == 3
    assert report["blob_bytes"] == sum(map(len, layers[:3]))
    assert gc_server.stored_blob_bytes() == start_bytes + sum(map(len, layers[3:])) + config_size
    for number in (3, 4):
        assert pulled_layer(gc_server, repository, f"v{number}") == layers[number]


def test_deleting_an_image_releases_only_the_links_no_other_image_uses(
    gc_server: EcrdServer,
) -> None:
    ecr = gc_server.ecr()
    repository = "gc/shared"
    ecr.create_repository(repositoryName=repository)
    shared, own = os.urandom(4096), os.urandom(4096)
    # two images over one base layer; the first also has a layer of its own
    manifest = image_manifest(ecr, repository, layers=[shared, own], config=b'{"gc": "one"}')
    put_image(ecr, repository, manifest, "one")
    push(ecr, repository, shared, tag="two")
    ecr.batch_delete_image(repositoryName=repository, imageIds=[{"imageTag": "one"}])

    def released() -> dict[str, bool]:
        rows = gc_server.metadata_query(
            "SELECT rb.blob_digest, rb.released_at FROM repository_blobs rb "
            "JOIN repositories r ON r.id = rb.repository_id WHERE r.name = :name",
            name=repository,
        )
        return {digest: moment is not None for digest, moment in rows}

    # then the base layer's link, which the second image still uses, is not released (so
    # pulls of it write nothing), and the first image's own layer and config are
    assert released() == {
        digest_of(shared): False,
        digest_of(own): True,
        digest_of(b'{"gc": "one"}'): True,
        digest_of(b'{"gc": "test"}'): False,
    }
    assert pulled_layer(gc_server, repository, "two") == shared
    assert released()[digest_of(shared)] is False
    # and a collection takes only what the deleted image alone used
    report = run_gc(gc_server, "--grace", "0")
    assert (report["links"], report["blobs"]) == (2, 2)
    assert report["blob_bytes"] == len(own) + len(b'{"gc": "one"}')
