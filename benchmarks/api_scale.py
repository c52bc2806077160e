"""ECR API latency as the registry grows: is a page of ListImages, DescribeImages and
DescribeRepositories as fast with 1,000,000 images (and repositories) as with 1,000?

    .venv/bin/python benchmarks/api_scale.py [--sizes 1000,10000,...] [--quick]
        [--no-postgresql] [--tmp DIR]

For each database (SQLite, then PostgreSQL at 127.0.0.1:5432 in a database of its own,
dropped at the end) the registry is built by bulk inserts through ecrd's metadata layer, on a
schema made by ecrd's own migrations: N images in one repository, each the rows a push leaves
(ManifestStore.put: a manifest row, its manifest_blobs, its tags; the blobs and the
repository's links to them), and N repositories beside it. It then grows to the next size by
adding rows. At each size the real ecrd server (auth on, logged in with boto3) is started on
the database and timed over the wire: first pages, pages followed by nextToken, one page far
in (a keyset token for the middle of the listing), PutImage and BatchGetImage throughput. The
tables give each figure's ratio to the 1,000 one (target: within 1.2x, flat). Last, the plans
(SQLite: EXPLAIN QUERY PLAN; PostgreSQL: EXPLAIN ANALYZE) of the statements those operations
run, captured from ecrd's stores in this process, at the largest size.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from scale_out import postgres_database
from servers import REGION, AccessKey, Server, ecrd_server, running, scratch_dir
from sqlalchemy import Connection, Engine, event, func, insert, select, text, update

from ecrd.aws.pagination import encode_token
from ecrd.metadata.database import Database
from ecrd.metadata.image_scans import ScanStore
from ecrd.metadata.images import ImageStore
from ecrd.metadata.manifests import ManifestStore
from ecrd.metadata.records import NewManifest, RepositorySettings
from ecrd.metadata.registries import RegistryStore
from ecrd.metadata.repositories import RepositoryStore
from ecrd.metadata.schema import (
    blobs,
    manifest_blobs,
    manifests,
    repositories,
    repository_blobs,
    tags,
)
from ecrd.registry.manifest_format import parse_manifest

ACCOUNT = "000000000000"
BIG_REPO = "bench/big"
SIZES = (1_000, 10_000, 100_000, 1_000_000)
QUICK_SIZES = (1_000, 10_000)
# Images (and repositories) per bulk transaction.
BATCH = 10_000
# Layers every image shares two of (base images), besides its own config and top layer.
BASE_LAYERS = 64
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
PAGE = 100
WARM_UPS = 3
REPEATS = 30
FOLLOWED_PAGES = 5
# Bounds of every timed loop.
LATENCY_SECONDS = 30.0
PUT_SECONDS, PUT_MAX, PUT_THREADS = 10.0, 3_000, 4
GET_SECONDS, GET_MAX_CALLS, GET_IDS = 8.0, 400, 100
TARGET = 1.2
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
# Background jobs (collector, lifecycle) stay out of the timed figures.
QUIET_JOBS = {"ECRD_GC_INTERVAL_SECONDS": "86400", "ECRD_LIFECYCLE_INTERVAL_SECONDS": "86400"}


def sha(text_: str) -> str:
    return "sha256:" + hashlib.sha256(text_.encode()).hexdigest()


def base_layer(number: int) -> str:
    return sha(f"base-layer-{number}")


def image_manifest(index: int, annotation: str | None = None) -> NewManifest:
    """Image `index`'s manifest as ecrd parses a push of it: its own config and top layer,
    and two of the shared base layers."""
    layers = [base_layer(index % BASE_LAYERS), base_layer((index // BASE_LAYERS) % BASE_LAYERS)]
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha(f"config-{index}"), "size": 1500},
        "layers": [
            *({"mediaType": OCI_LAYER, "digest": d, "size": 30_000_000} for d in layers),
            {"mediaType": OCI_LAYER, "digest": sha(f"layer-{index}"), "size": 2_000_000 + index},
        ],
    }
    if annotation is not None:
        document["annotations"] = {"org.example.bench": annotation}
    payload = json.dumps(document, separators=(",", ":")).encode()
    return parse_manifest(payload, None, "sha256", infer_media_type=False)


def image_tags(index: int) -> list[str]:
    """One image in ten untagged, one in ten with two tags, the rest with one."""
    if index % 10 == 0:
        return []
    if index % 10 == 1:
        return [f"build-{index}", f"release-{index}"]
    return [f"build-{index}"]


def repository_name(index: int) -> str:
    return f"team-{index % 97:02d}/service-{index}"


@dataclass
class Store:
    """The database under test and what has been built in it so far."""

    label: str
    url: str  # as the server takes it
    database: Database
    registry_id: int = 0
    repository_id: int = 0
    images: int = 0  # bulk-built images (PutImage adds more)
    repositories: int = 1  # the big one included
    build_seconds: dict[int, float] = field(default_factory=dict)


async def prepare(store: Store) -> None:
    """ecrd's migrations, the registry, the big repository and the shared layers."""
    await store.database.migrate()
    registry = await RegistryStore(store.database, None).ensure(ACCOUNT, REGION)
    repository = await RepositoryStore(store.database).create(
        registry.id,
        BIG_REPO,
        f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{BIG_REPO}",
        RepositorySettings(),
        {},
    )
    assert repository is not None
    store.registry_id, store.repository_id = registry.id, repository.id
    now = EPOCH
    shared = [base_layer(number) for number in range(BASE_LAYERS)]

    def work(connection: Connection) -> None:
        connection.execute(
            insert(blobs), [{"digest": d, "size": 30_000_000, "created_at": now} for d in shared]
        )
        connection.execute(
            insert(repository_blobs),
            [{"repository_id": repository.id, "blob_digest": d, "created_at": now} for d in shared],
        )

    await store.database.write(work)


def image_rows(
    repository_id: int, first: int, count: int, first_id: int
) -> dict[str, list[dict[str, Any]]]:
    """The rows a push of each of images first..first+count-1 leaves (manifest ids from
    `first_id`): what ManifestStore.put and the blob uploads before it write."""
    rows: dict[str, list[dict[str, Any]]] = {
        "blobs": [],
        "repository_blobs": [],
        "manifests": [],
        "manifest_blobs": [],
        "tags": [],
    }
    for offset in range(count):
        index = first + offset
        manifest_id = first_id + offset
        pushed = EPOCH + timedelta(seconds=index)
        new = image_manifest(index)
        for digest, size in ((sha(f"config-{index}"), 1500), (sha(f"layer-{index}"), 2_000_000)):
            rows["blobs"].append({"digest": digest, "size": size, "created_at": pushed})
            rows["repository_blobs"].append(
                {"repository_id": repository_id, "blob_digest": digest, "created_at": pushed}
            )
        rows["manifests"].append(
            {
                "id": manifest_id,
                "repository_id": repository_id,
                "digest": new.digest,
                "media_type": new.media_type,
                "artifact_type": new.artifact_type,
                "config_media_type": new.config_media_type,
                "subject_digest": new.subject_digest,
                "annotations_json": new.annotations_json,
                "size": new.size,
                "payload": new.payload,
                "pushed_at": pushed,
                "image_status": "ACTIVE",
            }
        )
        rows["manifest_blobs"].extend(
            {"manifest_id": manifest_id, "blob_digest": d} for d in sorted(new.blob_digests)
        )
        rows["tags"].extend(
            {
                "repository_id": repository_id,
                "name": name,
                "manifest_id": manifest_id,
                "updated_at": pushed,
            }
            for name in image_tags(index)
        )
    return rows


TABLES = {
    "blobs": blobs,
    "repository_blobs": repository_blobs,
    "manifests": manifests,
    "manifest_blobs": manifest_blobs,
    "tags": tags,
}


def repository_rows(
    registry_id: int, first: int, count: int, first_id: int
) -> list[dict[str, Any]]:
    return [
        {
            "id": first_id + offset,
            "registry_id": registry_id,
            "name": repository_name(first + offset),
            "arn": f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{repository_name(first + offset)}",
            "created_at": EPOCH + timedelta(seconds=first + offset),
            "image_tag_mutability": "MUTABLE",
            "tag_mutability_exclusions_json": "[]",
            "scan_on_push": False,
            "encryption_type": "AES256",
        }
        for offset in range(count)
    ]


def next_id(connection: Connection, column: Any) -> int:
    return int(connection.execute(select(func.max(column))).scalar() or 0) + 1


async def grow(store: Store, size: int) -> None:
    """Add images and repositories up to `size` of each, BATCH per transaction."""
    started = time.perf_counter()
    database = store.database
    while store.images < size:
        count = min(BATCH, size - store.images)
        first = store.images

        def add_images(connection: Connection, first: int = first, count: int = count) -> None:
            rows = image_rows(
                store.repository_id, first, count, next_id(connection, manifests.c.id)
            )
            for name, table in TABLES.items():
                if rows[name]:
                    connection.execute(insert(table), rows[name])

        await database.write(add_images)
        store.images += count
    while store.repositories < size:
        count = min(BATCH, size - store.repositories)
        first = store.repositories

        def add_repositories(
            connection: Connection, first: int = first, count: int = count
        ) -> None:
            rows = repository_rows(
                store.registry_id, first, count, next_id(connection, repositories.c.id)
            )
            connection.execute(insert(repositories), rows)

        await database.write(add_repositories)
        store.repositories += count
    if not database.is_sqlite:
        # Explicit ids leave the sequences behind; then what autovacuum would do after a
        # bulk load (statistics, visibility map), done now rather than during the timing.
        def sequences(connection: Connection) -> None:
            for table in ("manifests", "repositories"):
                connection.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"
                    )
                )

        await database.write(sequences)

        # Reads are in autocommit on PostgreSQL, where VACUUM may run.
        def vacuum(connection: Connection) -> None:
            for table in (*TABLES, "repositories"):
                connection.exec_driver_sql(f"VACUUM (ANALYZE) {table}")

        await database.read(vacuum)
    store.build_seconds[size] = time.perf_counter() - started


# Measuring over the wire -----------------------------------------------------------------


def ecr_client(server: Server) -> Any:
    import boto3
    from botocore.config import Config

    key = server.access_key
    assert key is not None
    return boto3.client(
        "ecr",
        endpoint_url=server.base,
        region_name=REGION,
        aws_access_key_id=key.access_key_id,
        aws_secret_access_key=key.secret_access_key,
        config=Config(
            connect_timeout=10,
            read_timeout=120,
            retries={"total_max_attempts": 1},
            max_pool_connections=PUT_THREADS * 2,
        ),
    )


@dataclass
class Latency:
    samples: list[float]  # seconds

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p95(self) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def warm_up(call: Callable[[], object]) -> None:
    """`WARM_UPS` untimed calls, fewer when they are slow (a full scan of a large table)."""
    deadline = time.monotonic() + LATENCY_SECONDS / 3
    for _ in range(WARM_UPS):
        call()
        if time.monotonic() > deadline:
            return


def timed(call: Callable[[], object], repeats: int = REPEATS) -> Latency:
    """`WARM_UPS` untimed calls, then `repeats` timed ones (bounded by LATENCY_SECONDS)."""
    warm_up(call)
    samples: list[float] = []
    deadline = time.monotonic() + LATENCY_SECONDS
    while len(samples) < repeats and (not samples or time.monotonic() < deadline):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return Latency(samples)


def followed(call: Callable[[str | None], str | None]) -> Latency:
    """Pages 2..FOLLOWED_PAGES+1 reached by following nextToken from the first, each timed."""
    samples: list[float] = []
    call(None)  # warm-up
    deadline = time.monotonic() + LATENCY_SECONDS
    for _round in range(REPEATS):
        if len(samples) >= REPEATS or time.monotonic() > deadline:
            break
        token = call(None)
        for _page in range(FOLLOWED_PAGES):
            if token is None:
                break
            started = time.perf_counter()
            token = call(token)
            samples.append(time.perf_counter() - started)
    if not samples:
        raise RuntimeError("no second page: the listing has fewer than two pages")
    return Latency(samples)


async def middle_keys(store: Store) -> tuple[int, str]:
    """The manifest id and the repository name half way through their listings."""
    half_images = store.images // 2
    half_repositories = store.repositories // 2

    def work(connection: Connection) -> tuple[int, str]:
        manifest_id = connection.execute(
            select(manifests.c.id)
            .where(manifests.c.repository_id == store.repository_id)
            .order_by(manifests.c.id)
            .offset(half_images)
            .limit(1)
        ).scalar_one()
        name = repositories.c.name
        if not store.database.is_sqlite:
            name = name.collate("C")  # type: ignore[assignment]
        repository = connection.execute(
            select(repositories.c.name)
            .where(repositories.c.registry_id == store.registry_id)
            .order_by(name)
            .offset(half_repositories)
            .limit(1)
        ).scalar_one()
        return int(manifest_id), str(repository)

    return await store.database.read(work)


def latencies(store: Store, ecr: Any, middle: tuple[int, str]) -> dict[str, Latency]:
    repo = {"repositoryName": BIG_REPO, "maxResults": PAGE}
    list_scope = f"ListImages:{store.repository_id}:ANY:ACTIVE"
    describe_scope = f"DescribeImages:{store.repository_id}:ANY:ACTIVE"
    repositories_scope = f"DescribeRepositories:{store.registry_id}"
    middle_id, middle_name = middle

    def checked(answer: dict[str, Any], key: str) -> dict[str, Any]:
        if len(answer[key]) != PAGE:
            raise RuntimeError(f"{key}: {len(answer[key])} entries, expected {PAGE}")
        return answer

    def list_images(token: str | None) -> str | None:
        extra = {} if token is None else {"nextToken": token}
        return checked(ecr.list_images(**repo, **extra), "imageIds").get("nextToken")

    def describe_images(token: str | None) -> str | None:
        extra = {} if token is None else {"nextToken": token}
        return checked(ecr.describe_images(**repo, **extra), "imageDetails").get("nextToken")

    def describe_repositories(token: str | None) -> str | None:
        extra = {} if token is None else {"nextToken": token}
        answer = ecr.describe_repositories(maxResults=PAGE, **extra)
        return checked(answer, "repositories").get("nextToken")

    results = {
        "ListImages page 1": timed(lambda: list_images(None)),
        "ListImages next pages": followed(list_images),
        "ListImages middle page": timed(
            lambda: list_images(encode_token(list_scope, [middle_id, ""]))
        ),
        "DescribeImages page 1": timed(lambda: describe_images(None)),
        "DescribeImages next pages": followed(describe_images),
        "DescribeImages middle page": timed(
            lambda: describe_images(encode_token(describe_scope, middle_id))
        ),
        "DescribeRepositories page 1": timed(lambda: describe_repositories(None)),
        "DescribeRepositories next pages": followed(describe_repositories),
        "DescribeRepositories middle page": timed(
            lambda: describe_repositories(encode_token(repositories_scope, middle_name))
        ),
    }
    return results


def put_images(server: Server, size: int) -> tuple[float, int]:
    """PutImage of new manifests over existing layers, PUT_THREADS clients, for PUT_SECONDS
    (at most PUT_MAX images): (images/s, images)."""
    counter = iter(range(PUT_MAX))
    lock = threading.Lock()
    errors: list[BaseException] = []
    done = [0]
    deadline = time.monotonic() + PUT_SECONDS

    def worker(number: int) -> None:
        ecr = ecr_client(server)
        rng = random.Random(number)
        try:
            while time.monotonic() < deadline:
                with lock:
                    n = next(counter, None)
                if n is None:
                    return
                new = image_manifest(rng.randrange(size), annotation=f"put-{size}-{n}")
                ecr.put_image(
                    repositoryName=BIG_REPO,
                    imageManifest=new.payload.decode(),
                    imageManifestMediaType=new.media_type,
                    imageTag=f"put-{size}-{n}",
                )
                with lock:
                    done[0] += 1
        except Exception as error:  # reported after the threads end
            errors.append(error)

    worker_threads = [threading.Thread(target=worker, args=(i,)) for i in range(PUT_THREADS)]
    started = time.perf_counter()
    for thread in worker_threads:
        thread.start()
    for thread in worker_threads:
        thread.join(PUT_SECONDS + 120)
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"PutImage failed: {errors[0]!r}")
    return done[0] / elapsed, done[0]


def batch_gets(ecr: Any, size: int) -> tuple[float, Latency]:
    """BatchGetImage of GET_IDS images spread over the repository (tags, and digests for the
    untagged), for GET_SECONDS (at most GET_MAX_CALLS calls): (images/s, call latency)."""
    rng = random.Random(size)

    def one() -> None:
        ids: list[dict[str, str]] = []
        for index in rng.sample(range(size), GET_IDS):
            names = image_tags(index)
            if names:
                ids.append({"imageTag": names[-1]})
            else:
                ids.append({"imageDigest": image_manifest(index).digest})
        answer = ecr.batch_get_image(repositoryName=BIG_REPO, imageIds=ids)
        if len(answer["images"]) != GET_IDS or answer["failures"]:
            raise RuntimeError(f"BatchGetImage: {answer['failures'][:3]}")

    warm_up(one)
    samples: list[float] = []
    deadline = time.monotonic() + GET_SECONDS
    while len(samples) < GET_MAX_CALLS and time.monotonic() < deadline:
        started = time.perf_counter()
        one()
        samples.append(time.perf_counter() - started)
    return GET_IDS * len(samples) / sum(samples), Latency(samples)


@dataclass
class Figures:
    latency: dict[str, Latency]
    put_rate: float
    put_count: int
    get_rate: float
    get_latency: Latency


async def measure(
    store: Store, size: int, workdir: Path, key: AccessKey | None
) -> tuple[Figures, AccessKey]:
    """Start ecrd on the store (logged in with `key`, or a fresh root key the first time),
    time everything over the wire, stop it."""
    middle = await middle_keys(store)
    environment = {"ECRD_DATABASE_URL": store.url, **QUIET_JOBS}
    server = ecrd_server(workdir, environment, key)
    assert server.access_key is not None

    def timings() -> Figures:
        ecr = ecr_client(server)
        figures_latency = latencies(store, ecr, middle)
        get_rate, get_latency = batch_gets(ecr, size)
        put_rate, put_count = put_images(server, size)
        return Figures(figures_latency, put_rate, put_count, get_rate, get_latency)

    with running(server):  # in the main thread: it handles SIGTERM
        figures = await asyncio.to_thread(timings)
        if server.process is not None and server.process.poll() is not None:
            raise RuntimeError(f"ecrd died:\n{server.log_tail()}")
    return figures, server.access_key


async def forget_pulls(store: Store) -> None:
    """Clear the pull times BatchGetImage left: an image pulled once is described with its
    lastRecordedPullTime (measured: 1.7 ms more for a page of 100 to write and parse), so
    the first pages, pulled at the smallest size, would otherwise be slower at every later
    size than the same pages were before: not the registry's growth."""
    statement = (
        update(manifests)
        .where(
            (manifests.c.repository_id == store.repository_id)
            & manifests.c.last_pulled_at.is_not(None)
        )
        .values(last_pulled_at=None)
    )
    await store.database.write(lambda connection: connection.execute(statement))


# EXPLAIN of what the operations run ------------------------------------------------------


@contextlib.contextmanager
def captured() -> Iterator[list[tuple[str, Any]]]:
    """The statements (driver SQL and parameters) every engine runs inside the block."""
    statements: list[tuple[str, Any]] = []

    def listener(
        _connection: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, many: bool
    ) -> None:
        if not many:
            statements.append((statement, parameters))

    event.listen(Engine, "before_cursor_execute", listener)
    try:
        yield statements
    finally:
        event.remove(Engine, "before_cursor_execute", listener)


async def explain(store: Store) -> list[str]:
    """Each operation's statements, run through ecrd's stores here, with their plans."""
    database = store.database
    images, manifests_store = ImageStore(database), ManifestStore(database)
    middle_id, middle_name = await middle_keys(store)
    some = image_manifest(store.images // 3)
    tag = image_tags(store.images // 3 + 2)[0]
    operations: list[tuple[str, Callable[[], Any]]] = [
        ("ListImages page 1", lambda: images.id_page(store.repository_id, "ANY", None, PAGE + 1,
                                                     "ACTIVE")),
        ("ListImages middle page", lambda: images.id_page(
            store.repository_id, "ANY", (middle_id, ""), PAGE + 1, "ACTIVE")),
        ("DescribeImages page 1", lambda: images.page(store.repository_id, "ANY", None, PAGE + 1,
                                                      "ACTIVE")),
        ("DescribeImages middle page", lambda: images.page(
            store.repository_id, "ANY", middle_id, PAGE + 1, "ACTIVE")),
        ("DescribeImages scans", lambda: ScanStore(database).of_images(
            store.repository_id, [some.digest])),
        ("DescribeRepositories page 1", lambda: RepositoryStore(database).page(
            store.registry_id, None, PAGE + 1)),
        ("DescribeRepositories middle page", lambda: RepositoryStore(database).page(
            store.registry_id, middle_name, PAGE + 1)),
        ("BatchGetImage by tag", lambda: manifests_store.find(store.repository_id, tag, None)),
        ("BatchGetImage by digest", lambda: manifests_store.find(
            store.repository_id, None, some.digest)),
        ("PutImage", lambda: manifests_store.put(
            store.repository_id, image_manifest(7, annotation="explain"), "explain-tag")),
    ]  # fmt: skip
    out: list[str] = []
    for label, operation in operations:
        with captured() as statements:
            try:
                await operation()
            except Exception as error:  # a store that changed shape: say so, go on
                out.append(f"== {label}: failed to run: {error!r}")
                continue
        for statement, parameters in statements:
            out.append(f"== {label}\n{statement.strip()}")
            out.append(await plan_of(database, statement, parameters))
    return out


async def plan_of(database: Database, statement: str, parameters: Any) -> str:
    words = statement.lstrip().split(None, 1)[0].upper()
    if database.is_sqlite:
        prefix = "EXPLAIN QUERY PLAN "
    elif words == "SELECT":
        prefix = "EXPLAIN (ANALYZE, BUFFERS) "
    else:
        prefix = "EXPLAIN "  # a write: its plan, without running it again

    def work(connection: Connection) -> str:
        rows = connection.exec_driver_sql(prefix + statement, tuple(parameters or ())).all()
        if database.is_sqlite:
            return "\n".join(f"  {'  ' * _depth(rows, row)}{row[-1]}" for row in rows)
        return "\n".join(f"  {row[0]}" for row in rows)

    try:
        return await database.read(work)
    except Exception as error:
        return f"  (no plan: {error!r})"


def _depth(rows: Sequence[Any], row: Any) -> int:
    """How deep an EXPLAIN QUERY PLAN row (id, parent, notused, detail) sits."""
    parents = {r[0]: r[1] for r in rows}
    depth, parent = 0, row[1]
    while parent in parents and depth < 20:
        depth, parent = depth + 1, parents[parent]
    return depth


# Running and printing --------------------------------------------------------------------


def print_tables(store: Store, results: dict[int, Figures]) -> bool:
    sizes = sorted(results)
    first = results[sizes[0]]
    names = list(first.latency)
    print()
    print(f"=== {store.label}: latency (ms, median / p95) and median / median at {sizes[0]:,}")
    header = f"{'operation':<34}" + "".join(f"{size:>27,}" for size in sizes)
    print(header)
    print("-" * len(header))
    passed = True
    for name in names:
        base = first.latency[name].median
        cells = []
        for size in sizes:
            lat = results[size].latency[name]
            ratio = lat.median / base
            verdict = "ok" if ratio <= TARGET else "FAIL"
            passed &= ratio <= TARGET
            cells.append(f"{lat.median * 1e3:.1f}/{lat.p95 * 1e3:.1f} {ratio:.2f}x {verdict:>4}")
        print(f"{name:<34}" + "".join(f"{c:>27}" for c in cells))
    print()
    print("throughput")
    print(f"{'':<34}" + "".join(f"{size:>27,}" for size in sizes))
    put = [f"{results[s].put_rate:8.1f} ({results[s].put_count})" for s in sizes]
    print(f"{'PutImage images/s (count)':<34}" + "".join(f"{c:>27}" for c in put))
    get = [f"{results[s].get_rate:8.0f}" for s in sizes]
    print(f"{'BatchGetImage images/s':<34}" + "".join(f"{c:>27}" for c in get))
    get_ms = [
        f"{results[s].get_latency.median * 1e3:6.1f}/{results[s].get_latency.p95 * 1e3:6.1f}"
        for s in sizes
    ]
    print(f"{'BatchGetImage ms/call (100 ids)':<34}" + "".join(f"{c:>27}" for c in get_ms))
    build = [f"{store.build_seconds[s]:8.1f}" for s in sizes]
    print(f"{'build s (growing to this size)':<34}" + "".join(f"{c:>27}" for c in build))
    print(f"{store.label}: {'PASS' if passed else 'FAIL'} (every latency within {TARGET}x)")
    return passed


async def build_and_measure(store: Store, sizes: Sequence[int], workdir: Path, plans: Path) -> bool:
    await prepare(store)
    results: dict[int, Figures] = {}
    key: AccessKey | None = None
    for size in sizes:
        print(f"{store.label}: building {size:,} images and repositories ...", flush=True)
        await grow(store, size)
        print(f"  built in {store.build_seconds[size]:.1f} s; measuring ...", flush=True)
        figures, key = await measure(store, size, workdir, key)
        await forget_pulls(store)
        results[size] = figures
        line = ", ".join(f"{n} {v.median * 1e3:.1f}" for n, v in figures.latency.items())
        print(f"  {line} ms; PutImage {figures.put_rate:.1f}/s", flush=True)
    print(f"{store.label}: plans at {sizes[-1]:,} ...", flush=True)
    text_ = "\n".join(await explain(store))
    plans.write_text(text_ + "\n")
    passed = print_tables(store, results)
    print()
    print(f"--- {store.label}: statements and plans at {sizes[-1]:,} ({plans}) ---")
    print(text_)
    return passed


async def run_sqlite(sizes: Sequence[int], workdir: Path) -> bool:
    folder = workdir / "sqlite"
    folder.mkdir()
    url = f"sqlite:///{folder / 'metadata.db'}"
    store = Store("SQLite", url, Database(url))
    try:
        return await build_and_measure(store, sizes, folder, workdir / "plans-sqlite.txt")
    finally:
        await store.database.close()


async def run_postgresql(sizes: Sequence[int], workdir: Path) -> bool:
    folder = workdir / "postgresql"
    folder.mkdir()
    async with postgres_database() as url:
        store = Store("PostgreSQL", url, Database(url))
        try:
            return await build_and_measure(store, sizes, folder, workdir / "plans-postgresql.txt")
        finally:
            await store.database.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        default=",".join(str(s) for s in SIZES),
        help="comma-separated sizes (images in the repository, and repositories)",
    )
    parser.add_argument("--quick", action="store_true", help="sizes 1,000 and 10,000")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--no-postgresql", action="store_true")
    parser.add_argument("--tmp", type=Path, default=None, help="folder for the temporary data")
    parser.add_argument(
        "--keep-plans", type=Path, default=None, help="copy the plan files to this folder"
    )
    args = parser.parse_args()
    sizes = sorted(QUICK_SIZES if args.quick else {int(s) for s in args.sizes.split(",")})
    if sizes[0] < 2 * PAGE:
        parser.error(f"the smallest size must be at least {2 * PAGE}")
    passed = True
    with scratch_dir("ecrd-api-scale-", args.tmp) as workdir:
        try:
            if not args.no_sqlite:
                passed &= asyncio.run(run_sqlite(sizes, workdir))
            if not args.no_postgresql:
                passed &= asyncio.run(run_postgresql(sizes, workdir))
        except (RuntimeError, TimeoutError) as error:
            print(f"benchmark failed: {error!r}", file=sys.stderr)
            return 1
        finally:
            if args.keep_plans is not None:
                args.keep_plans.mkdir(parents=True, exist_ok=True)
                for plan in workdir.glob("plans-*.txt"):
                    (args.keep_plans / plan.name).write_text(plan.read_text())
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
