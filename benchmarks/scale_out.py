"""Does a second ecrd process add throughput? ecrd over its stores, one and two processes.

Three configurations, each over fresh stores, driven by the same client with the same data:

1. one process, SQLite + filesystem (the embedded default);
2. one process, PostgreSQL + S3 (moto, an S3-protocol server in Python on loopback);
3. two processes on two ports over one PostgreSQL database and one bucket, the load split
   evenly between them (half the clients, half the connections on each).

Measures push and pull of one large layer and of many small layers, and manifest GET by tag
requests/s; prints each figure, S3/filesystem (2 vs 1) and two processes/one (3 vs 2). The
throughput figures run with `ECRD_S3_REDIRECT=false`, so the bytes go through ecrd; a second,
redirect-on set of processes over the same stores adds pulls that follow the 307 to moto.
Run from the repository root: `.venv/bin/python benchmarks/scale_out.py [--quick]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
from compare import (
    MB,
    OCI_MANIFEST,
    SMALL_REPO,
    make_big_file,
    push_manifest,
    ratio,
    wrk_command,
)
from servers import (
    ECRD,
    ROOT,
    Server,
    ecrd_server,
    file_chunks,
    get_blob_to_devnull,
    hammer,
    install_uvloop,
    new_client,
    process_cpu_seconds,
    put_blob,
    require_free_space,
    running,
    scratch_dir,
    sha256_digest,
)

# The S3-protocol test server lives with the tests, one folder up from this script's.
sys.path.insert(0, str(ROOT))
from tests.s3_server import S3Server  # noqa: E402

POSTGRES = "postgresql://postgres@127.0.0.1:5432"
# The database to connect to for CREATE and DROP DATABASE.
POSTGRES_ADMIN_DATABASE = "test"
POSTGRES_TIMEOUT_SECONDS = 10.0
BIG_REPO = "bench/big"
WARM_UP_REPO = "bench/warm-up"
CLIENTS = 8
CONNECTIONS = 50
# The load generator for the manifest GETs when it is installed (Debian's wrk).
WRK = shutil.which("wrk")

Item = TypeVar("Item")


@dataclass(frozen=True)
class Configuration:
    column: str  # the table's column header
    title: str
    processes: int
    s3: bool  # PostgreSQL + S3; else SQLite + filesystem


CONFIGURATIONS = (
    Configuration("1p sqlite+fs", "one process, SQLite + filesystem", 1, s3=False),
    Configuration("1p pg+s3", "one process, PostgreSQL + S3", 1, s3=True),
    Configuration("2p pg+s3", "two processes, PostgreSQL + S3", 2, s3=True),
)


@dataclass
class Workload:
    big_path: Path
    big_size: int
    big_digest: str
    small_blobs: list[tuple[str, bytes]]
    load_seconds: float

    @property
    def small_bytes(self) -> int:
        return sum(len(data) for _, data in self.small_blobs)


@dataclass
class Sample:
    rate: float  # MB/s or requests/s
    ecrd_cpu_per_unit: float  # all ecrd processes together: CPU ms per MB, or µs per request
    moto_cpu_per_unit: float | None  # the same for the S3 server; None without one


@dataclass
class Meter:
    """CPU time of the processes doing the server side of the work, read around each figure."""

    ecrd: list[Server]
    moto_pid: int | None

    def read(self) -> tuple[float, float]:
        ecrd = sum(server.cpu_seconds() for server in self.ecrd)
        moto = process_cpu_seconds(self.moto_pid) if self.moto_pid is not None else 0.0
        return ecrd, moto

    def sample(self, rate: float, before: tuple[float, float], units: float) -> Sample:
        """`rate`, and the CPU each unit took since `before` (a `read()`), per `units`."""
        ecrd, moto = (after - then for after, then in zip(self.read(), before, strict=True))
        return Sample(rate, ecrd / units, moto / units if self.moto_pid is not None else None)

    async def throughput(self, size: int, work: Callable[[], Awaitable[object]]) -> Sample:
        """MB/s of `work`, which moves `size` bytes, and the CPU ms each MB took."""
        before, started = self.read(), time.perf_counter()
        await work()
        megabytes = size / MB
        # CPU seconds per thousandth of the megabytes are CPU ms per MB.
        return self.sample(megabytes / (time.perf_counter() - started), before, megabytes / 1000)


Endpoint = tuple[Server, httpx.AsyncClient]


async def spread(
    endpoints: Sequence[Endpoint],
    clients: int,
    items: Sequence[Item],
    job: Callable[[Endpoint, Item], Awaitable[object]],
) -> None:
    """`clients` workers, dealt round the endpoints in turn (half on each of two), take the
    next item until none is left."""
    pending = iter(items)  # shared: each item goes to whichever worker is free first

    async def worker(endpoint: Endpoint) -> None:
        for item in pending:
            await job(endpoint, item)

    await asyncio.gather(*(worker(endpoints[i % len(endpoints)]) for i in range(clients)))


@contextlib.asynccontextmanager
async def clients_of(
    servers: Sequence[Server], follow_redirects: bool = False
) -> AsyncIterator[list[Endpoint]]:
    async with contextlib.AsyncExitStack() as stack:
        endpoints = []
        for server in servers:
            client = await stack.enter_async_context(new_client(server, CLIENTS))
            # Off a redirect to moto's origin, httpx drops the registry token, as it should.
            client.follow_redirects = follow_redirects
            endpoints.append((server, client))
        yield endpoints


async def pulls(meter: Meter, endpoints: Sequence[Endpoint], work: Workload) -> list[Sample]:
    """The big layer (through the last process: with two, not the one that took the push),
    then the small layers."""
    server, client = endpoints[-1]
    big = await meter.throughput(
        work.big_size,
        lambda: get_blob_to_devnull(client, server.base, BIG_REPO, work.big_digest, work.big_size),
    )

    async def pull_one(endpoint: Endpoint, blob: tuple[str, bytes]) -> None:
        await get_blob_to_devnull(endpoint[1], endpoint[0].base, SMALL_REPO, *blob_size(blob))

    small = await meter.throughput(
        work.small_bytes, lambda: spread(endpoints, CLIENTS, work.small_blobs, pull_one)
    )
    return [big, small]


def blob_size(blob: tuple[str, bytes]) -> tuple[str, int]:
    return blob[0], len(blob[1])


async def pushes(meter: Meter, endpoints: Sequence[Endpoint], work: Workload) -> list[Sample]:
    """The big layer, streamed from disk through the first process, then the small layers."""
    server, client = endpoints[0]
    big = await meter.throughput(
        work.big_size,
        lambda: put_blob(
            client,
            server.base,
            BIG_REPO,
            work.big_digest,
            file_chunks(work.big_path, work.big_size),
            work.big_size,
        ),
    )

    async def push_one(endpoint: Endpoint, blob: tuple[str, bytes]) -> None:
        await put_blob(endpoint[1], endpoint[0].base, SMALL_REPO, blob[0], blob[1], len(blob[1]))

    small = await meter.throughput(
        work.small_bytes, lambda: spread(endpoints, CLIENTS, work.small_blobs, push_one)
    )
    return [big, small]


async def manifest_gets(meter: Meter, servers: Sequence[Server], work: Workload) -> Sample:
    """Push one small manifest, then GET it by tag over CONNECTIONS keep-alive connections,
    split evenly over the processes; requests/s summed."""
    url = await push_manifest(servers[0], work.small_blobs[0])
    path = url.removeprefix(servers[0].base)
    for server in servers[1:]:
        # The manifest pushed through process 1 must be there through the others.
        response = httpx.get(
            server.base + path,
            headers={"Authorization": server.authorization or "", "Accept": OCI_MANIFEST},
            timeout=10,
        )
        if response.status_code != 200:
            raise RuntimeError(f"GET manifest via {server.base}: {response.status_code}")
    share = CONNECTIONS // len(servers)
    before, started = meter.read(), time.perf_counter()
    if WRK is not None:
        # wrk (C) leaves the two cores to the servers; the Python loader needs one itself.
        counts = await asyncio.gather(
            *(wrk_gets(s, path, share, work.load_seconds) for s in servers)
        )
        completed = sum(count for count, _ in counts)
        failed = sum(bad for _, bad in counts)
    else:
        results = await asyncio.gather(
            *(hammer(s, path, "GET", share, work.load_seconds, OCI_MANIFEST) for s in servers)
        )
        completed = sum(count for _, count, _, _ in results)
        failed = sum(bad + errors for _, _, bad, errors in results)
    elapsed = time.perf_counter() - started
    if failed or not completed:
        raise RuntimeError(f"manifest GET: {completed} completed, {failed} failed or not 2xx")
    # CPU seconds per millionth of the requests are CPU µs per request.
    return meter.sample(completed / elapsed, before, completed / 1e6)


async def wrk_gets(server: Server, path: str, connections: int, seconds: float) -> tuple[int, int]:
    """GET `path` from `server` with wrk for `seconds`: (requests done, bad answers)."""
    command = wrk_command(
        server, server.base + path, "GET", connections, 1, math.ceil(seconds),
        server.workdir / "wrk-get.lua",
    )  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        output, errors = await asyncio.wait_for(process.communicate(), seconds + 60)
    except TimeoutError:
        process.kill()
        raise
    text = output.decode()
    done = re.search(r"(\d+) requests in", text)
    if process.returncode != 0 or done is None:
        raise RuntimeError(f"wrk failed ({process.returncode}): {errors.decode()[:500]}{text}")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    socket_errors = re.search(r"Socket errors: [^\n]+", text)
    if socket_errors is not None:
        raise RuntimeError(f"wrk: {socket_errors.group(0)}")
    return int(done.group(1)), int(bad.group(1)) if bad else 0


async def warm_up(endpoints: Sequence[Endpoint], redirect: bool) -> None:
    """One tiny blob pushed and pulled through each process, untimed, so that no figure
    includes a process's first connections to its stores; checks that a blob GET answers
    307 (to S3) with `redirect` and 200 (the bytes themselves) without."""
    expected = 307 if redirect else 200
    for server, client in endpoints:
        data = os.urandom(1024)
        digest = sha256_digest(data)
        await put_blob(client, server.base, WARM_UP_REPO, digest, data, len(data))
        url = f"{server.base}/v2/{WARM_UP_REPO}/blobs/{digest}"
        status = (await client.get(url, follow_redirects=False)).status_code
        if status != expected:
            raise RuntimeError(f"GET blob via {server.base}: {status}, expected {expected}")
        await get_blob_to_devnull(client, server.base, WARM_UP_REPO, digest, len(data))


def new_sealing_key() -> str:
    """A fresh sealing key in the `sealing_keys` form, from `ecrd sealing new-key`."""
    made = subprocess.run(
        [str(ECRD), "sealing", "new-key"], capture_output=True, text=True, check=True, timeout=60
    )
    return made.stdout.strip()


def share_login(servers: Sequence[Server]) -> None:
    """Every process takes the first one's registry token (the signing keys are in the
    database), and every request of the run carries it."""
    token = servers[0].authorization
    for server in servers[1:]:
        server.authorization = token
        status = httpx.get(
            f"{server.base}/v2/", headers={"Authorization": token or ""}, timeout=10
        ).status_code
        if status != 200:
            raise RuntimeError(f"{server.base}: /v2/ with process 1's login gives {status}")


def check_alive(servers: Sequence[Server]) -> None:
    for server in servers:
        if server.process is not None and server.process.poll() is not None:
            raise RuntimeError(f"{server.name} on {server.base} died:\n{server.log_tail()}")


async def postgres_statement(statement: str) -> None:
    import asyncpg

    try:
        connection = await asyncpg.connect(
            f"{POSTGRES}/{POSTGRES_ADMIN_DATABASE}", timeout=POSTGRES_TIMEOUT_SECONDS
        )
    except (OSError, TimeoutError, asyncpg.PostgresError) as error:
        raise RuntimeError(f"PostgreSQL at {POSTGRES} does not answer: {error!r}") from error
    try:
        await connection.execute(statement, timeout=POSTGRES_TIMEOUT_SECONDS * 3)
    finally:
        await connection.close(timeout=POSTGRES_TIMEOUT_SECONDS)


@contextlib.asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """A new, empty database; dropped at the end (connections and all)."""
    name = f"ecrd_bench_{secrets.token_hex(6)}"
    await postgres_statement(f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES}/{name}"
    finally:
        await postgres_statement(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def processes(
    config: Configuration, workdir: Path, environment: dict[str, str], phase: str
) -> list[Server]:
    """`config.processes` ecrd servers over the same stores, all with one root key."""
    first = ecrd_server(workdir / f"{phase}-process-1", environment)
    servers = [first]
    for index in range(2, config.processes + 1):
        servers.append(
            ecrd_server(workdir / f"{phase}-process-{index}", environment, first.access_key)
        )
    for server in servers:
        server.workdir.mkdir(parents=True)
    return servers


async def run_configuration(
    config: Configuration, work: Workload, s3: S3Server, workdir: Path
) -> dict[str, Sample]:
    results: dict[str, Sample] = {}
    async with contextlib.AsyncExitStack() as stack:
        environment: dict[str, str] = {}
        moto_pid = None
        if config.s3:
            database_url = await stack.enter_async_context(postgres_database())
            bucket = s3.create_bucket(f"ecrd-bench-{secrets.token_hex(6)}")
            stack.callback(s3.delete_bucket, bucket)  # frees moto's memory
            environment = {
                **s3.environment(),
                "ECRD_DATABASE_URL": database_url,
                "ECRD_BLOB_STORE": "s3",
                "ECRD_S3_BUCKET": bucket,
                "ECRD_S3_ENDPOINT_URL": s3.endpoint_url,
                "ECRD_S3_REDIRECT": "false",
            }
            moto_pid = s3.pid
        # One keyring for every process, as a cluster must have: each seals and opens the
        # signing keys its tokens are made with, so one process's login works on the others.
        environment["ECRD_SEALING_KEYS"] = new_sealing_key()
        servers = processes(config, workdir, environment, "streamed")
        with running(*servers):
            share_login(servers)
            print(f"  pids {', '.join(str(s.pid) for s in servers)}", flush=True)
            meter = Meter(servers, moto_pid)
            async with clients_of(servers) as endpoints:
                await warm_up(endpoints, redirect=False)
                print("  push ...", flush=True)
                results["big push"], results["small push"] = await pushes(meter, endpoints, work)
                print("  pull ...", flush=True)
                results["big pull"], results["small pull"] = await pulls(meter, endpoints, work)
            print(
                f"  manifest GET, {CONNECTIONS} connections, {work.load_seconds:g}s ...", flush=True
            )
            results["manifest GET"] = await manifest_gets(meter, servers, work)
            check_alive(servers)
        if config.s3:
            # New processes over the same stores, with redirects on: the bytes come from moto.
            environment["ECRD_S3_REDIRECT"] = "true"
            servers = processes(config, workdir, environment, "redirected")
            with running(*servers):
                share_login(servers)
                print("  pull, S3 redirect on ...", flush=True)
                meter = Meter(servers, moto_pid)
                async with clients_of(servers, follow_redirects=True) as endpoints:
                    await warm_up(endpoints, redirect=True)
                    big, small = await pulls(meter, endpoints, work)
                results["big pull redirect"], results["small pull redirect"] = big, small
                check_alive(servers)
    return results


def print_tables(
    labels: dict[str, tuple[str, str]], results: dict[str, dict[str, Sample]], cores: int
) -> None:
    columns = [config.column for config in CONFIGURATIONS]
    widths = [max(9, len(column)) for column in columns]
    width = max(len(f"{label} ({cpu_unit(unit)})") for label, unit in labels.values())
    header = f"{'measure':<{width}} " + " ".join(
        f"{column:>{w}}" for column, w in zip(columns, widths, strict=True)
    )
    header += f" {'s3/fs':>6} {'2p/1p':>6}"
    tables: list[tuple[str, Callable[[Sample], float | None], Callable[[str], str]]] = [
        ("throughput (higher is better)", lambda s: s.rate, lambda unit: unit),
        (
            "ecrd CPU per unit of work, all ecrd processes together (lower is better)",
            lambda s: s.ecrd_cpu_per_unit,
            cpu_unit,
        ),
        ("moto (S3 server) CPU per unit of work", lambda s: s.moto_cpu_per_unit, cpu_unit),
    ]
    for title, value_of, unit_of in tables:
        print()
        print(title)
        print(header)
        print("-" * len(header))
        for key, (label, unit) in labels.items():
            row = results[key]
            fs, one, two = (value_of(row[c]) if c in row else None for c in columns)
            cells = [cell(v, w) for v, w in zip((fs, one, two), widths, strict=True)]
            cells += [cell(ratio_of(one, fs), 6, 2), cell(ratio_of(two, one), 6, 2)]
            print(f"{f'{label} ({unit_of(unit)})':<{width}} {' '.join(cells)}")
    print()
    print(f"notes: this machine has {cores} cores, shared by the client, every ecrd process,")
    print("  PostgreSQL and moto (a Python process); absolute figures are low, the 2p/1p ratio")
    print("  (does a second process add throughput?) is the point. s3/fs = column 2 / column 1,")
    print("  2p/1p = column 3 / column 2. Streamed figures: ECRD_S3_REDIRECT=false, the bytes")
    print("  go through ecrd. 'redirect on': ecrd answers 307 to a presigned URL and the client")
    print("  fetches the bytes from moto. With two processes the big layer is pushed through")
    print("  process 1 and pulled through process 2; the small layers and the manifest GETs")
    print("  are split evenly over both; every request carries process 1's registry token.")


def ratio_of(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else ratio(a, b)


def cpu_unit(unit: str) -> str:
    return "CPU ms/MB" if unit == "MB/s" else "CPU us/request"


def cell(value: float | None, width: int, decimals: int = 1) -> str:
    """A figure, or "-" where there is none (no S3 server, or a ratio over 0)."""
    missing = value is None or math.isnan(value)
    return f"{'-':>{width}}" if missing else f"{value:>{width}.{decimals}f}"


async def measure(args: argparse.Namespace, workdir: Path, s3: S3Server) -> None:
    big_size = (16 if args.quick else 64) * 2**20
    small_count, small_size = (32, 256 * 1024) if args.quick else (100, 256 * 1024)
    require_free_space(workdir, 4 * big_size + 2**30, "the benchmark")
    big_path = workdir / "big-layer.bin"
    small = [os.urandom(small_size) for _ in range(small_count)]
    work = Workload(
        big_path,
        big_size,
        make_big_file(big_path, big_size),
        [(sha256_digest(data), data) for data in small],
        2.0 if args.quick else 10.0,
    )
    results: dict[str, dict[str, Sample]] = {}
    for config in CONFIGURATIONS:
        print(f"{config.column}: {config.title} ...", flush=True)
        config_dir = workdir / config.column.replace(" ", "-").replace("+", "-")
        figures = await run_configuration(config, work, s3, config_dir)
        for key, sample in figures.items():
            results.setdefault(key, {})[config.column] = sample
    big = f"1 x {big_size // 2**20} MiB layer"
    small_label = f"{small_count} x {small_size // 1024} KiB, {CLIENTS} clients"
    labels = {
        "big push": (f"push {big}", "MB/s"),
        "big pull": (f"pull {big}", "MB/s"),
        "small push": (f"push {small_label}", "MB/s"),
        "small pull": (f"pull {small_label}", "MB/s"),
        "manifest GET": (f"manifest GET by tag, c={CONNECTIONS}", "req/s"),
        "big pull redirect": (f"pull {big}, redirect on", "MB/s"),
        "small pull redirect": (f"pull {small_label}, redirect on", "MB/s"),
    }
    print_tables(labels, results, os.cpu_count() or 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="16 MiB layer, 32 small layers, 2 s load runs"
    )
    parser.add_argument(
        "--tmp", type=Path, default=None, help="folder for the temporary data (default: TMPDIR)"
    )
    args = parser.parse_args()
    install_uvloop()
    with scratch_dir("ecrd-scale-out-", args.tmp) as workdir:
        try:
            with S3Server(workdir / "moto.log") as s3:
                asyncio.run(measure(args, workdir, s3))
        except (RuntimeError, TimeoutError, httpx.HTTPError) as error:
            print(f"benchmark failed: {error!r}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
