"""ecrd against CNCF Distribution: the same client, the same data, side by side.

Measures push and pull of one large layer, push and pull of many small layers, and manifest
HEAD/GET requests per second under wrk; prints each figure and the ecrd/Distribution ratio.
Run through benchmarks/run.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from servers import (
    CHUNK,
    Server,
    distribution_server,
    ecrd_server,
    file_chunks,
    get_blob_to_devnull,
    hammer,
    install_uvloop,
    new_client,
    put_blob,
    require_free_space,
    running,
    scratch_dir,
    sha256_digest,
)

MB = 1_000_000
SMALL_COUNT = 200
SMALL_SIZE = 64 * 1024
SMALL_CONCURRENCY = 8
WRK = shutil.which("wrk") or "/usr/bin/wrk"
WRK_CONNECTIONS = 50
WRK_THREADS = 2
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
BIG_REPO = "bench/big"
SMALL_REPO = "bench/small"
TAG = "v1"


@dataclass
class Figure:
    label: str
    unit: str
    values: dict[str, Sample]
    notes: list[str]


def make_big_file(path: Path, size: int) -> str:
    """Random bytes on disk (incompressible, no two runs alike); returns their digest."""
    hasher = hashlib.sha256()
    written = 0
    with open(path, "wb") as file:
        while written < size:
            chunk = os.urandom(min(CHUNK, size - written))
            hasher.update(chunk)
            file.write(chunk)
            written += len(chunk)
    return "sha256:" + hasher.hexdigest()


@dataclass
class Sample:
    rate: float  # the figure: MB/s or requests/s
    cpu_per_unit: float  # server CPU ms per MB, or µs per request


async def timed(server: Server, work: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    """(wall seconds, server CPU seconds) spent on `work`."""
    cpu = server.cpu_seconds()
    started = time.perf_counter()
    await work()
    return time.perf_counter() - started, server.cpu_seconds() - cpu


def throughput(size: int, elapsed: float, cpu: float) -> Sample:
    return Sample(size / elapsed / MB, cpu * 1000 / (size / MB))


async def big_layer(server: Server, path: Path, size: int, digest: str) -> tuple[Sample, Sample]:
    async with new_client(server, 1) as client:
        push = await timed(
            server,
            lambda: put_blob(client, server.base, BIG_REPO, digest, file_chunks(path, size), size),
        )
        pull = await timed(
            server, lambda: get_blob_to_devnull(client, server.base, BIG_REPO, digest, size)
        )
    return throughput(size, *push), throughput(size, *pull)


async def curl_pull(server: Server, digest: str, size: int) -> Sample:
    """The large layer pulled by curl to /dev/null: a client faster than the Python one, so
    that the figure is the server's rather than the client's."""
    command = ["curl", "-sS", "-f", "-L", "-o", "/dev/null", "-w", "%{size_download}"]
    if server.authorization:
        command += ["-H", f"Authorization: {server.authorization}"]
    command.append(f"{server.base}/v2/{BIG_REPO}/blobs/{digest}")

    async def pull() -> None:
        process = await asyncio.create_subprocess_exec(*command, stdout=subprocess.PIPE)
        output, _ = await asyncio.wait_for(process.communicate(), timeout=600)
        if process.returncode != 0 or int(output or 0) != size:
            raise RuntimeError(f"curl pull from {server.name}: {process.returncode} {output!r}")

    return throughput(size, *await timed(server, pull))


async def small_layers(server: Server, blobs: list[tuple[str, bytes]]) -> tuple[Sample, Sample]:
    total = sum(len(data) for _, data in blobs)
    semaphore = asyncio.Semaphore(SMALL_CONCURRENCY)
    async with new_client(server, SMALL_CONCURRENCY) as client:

        async def push_one(digest: str, data: bytes) -> None:
            async with semaphore:
                await put_blob(client, server.base, SMALL_REPO, digest, data, len(data))

        async def pull_one(digest: str, data: bytes) -> None:
            async with semaphore:
                await get_blob_to_devnull(client, server.base, SMALL_REPO, digest, len(data))

        push = await timed(server, lambda: asyncio.gather(*(push_one(d, b) for d, b in blobs)))
        pull = await timed(server, lambda: asyncio.gather(*(pull_one(d, b) for d, b in blobs)))
    return throughput(total, *push), throughput(total, *pull)


async def push_manifest(server: Server, layer: tuple[str, bytes]) -> str:
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [layer[0]]},
        }
    ).encode()
    config_digest = sha256_digest(config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer[0],
                    "size": len(layer[1]),
                }
            ],
        }
    ).encode()
    url = f"{server.base}/v2/{SMALL_REPO}/manifests/{TAG}"
    async with new_client(server, 1) as client:
        await put_blob(client, server.base, SMALL_REPO, config_digest, config, len(config))
        response = await client.put(url, content=manifest, headers={"Content-Type": OCI_MANIFEST})
        if response.status_code != 201:
            raise RuntimeError(f"PUT manifest: {response.status_code} {response.text[:300]}")
        # The same request wrk will make must succeed before it is timed.
        for method in ("HEAD", "GET"):
            check = await client.request(method, url, headers={"Accept": OCI_MANIFEST})
            if check.status_code != 200:
                raise RuntimeError(f"{method} manifest: {check.status_code}")
    return url


def wrk_command(
    server: Server,
    url: str,
    method: str,
    connections: int,
    threads: int,
    seconds: int,
    script: Path,
) -> list[str]:
    """The wrk command line for manifest requests with the server's login, writing its
    script to `script`."""
    lines = [f'wrk.method = "{method}"', f'wrk.headers["Accept"] = "{OCI_MANIFEST}"']
    if server.authorization:
        lines.append(f'wrk.headers["Authorization"] = "{server.authorization}"')
    script.write_text("\n".join(lines) + "\n")
    return [
        WRK, "-c", str(connections), "-t", str(threads), "-d", f"{seconds}s",
        "--timeout", "5s", "-s", str(script), url,
    ]  # fmt: skip


def wrk(
    server: Server, url: str, method: str, seconds: int, workdir: Path
) -> tuple[Sample, list[str]]:
    command = wrk_command(
        server, url, method, WRK_CONNECTIONS, WRK_THREADS, seconds,
        workdir / f"wrk-{method.lower()}.lua",
    )  # fmt: skip
    cpu = server.cpu_seconds()
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"wrk failed ({result.returncode}): {result.stderr[:500]}")
    cpu = server.cpu_seconds() - cpu
    output = result.stdout
    count = re.search(r"(\d+) requests in", output)
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if match is None:
        raise RuntimeError(f"no Requests/sec in wrk output:\n{output}")
    notes = []
    for pattern in (r"Non-2xx or 3xx responses: \d+", r"Socket errors: [^\n]+"):
        found = re.search(pattern, output)
        if found:
            notes.append(found.group(0))
    latency = re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", output)
    if latency:
        notes.append(f"latency avg {latency.group(1)}, max {latency.group(3)}")
    per_request = cpu * 1e6 / int(count.group(1)) if count and int(count.group(1)) else 0.0
    return Sample(float(match.group(1)), per_request), notes


def print_table(figures: list[Figure], names: tuple[str, str]) -> None:
    left, right = names
    width = 48
    header = f"{'measure':<{width}} {left:>10} {right:>13} {'ecrd/dist':>10}"
    print()
    print(header)
    print("-" * len(header))
    for figure in figures:
        a, b = figure.values[left].rate, figure.values[right].rate
        label = f"{figure.label} ({figure.unit})"
        print(f"{label:<{width}} {a:>10.1f} {b:>13.1f} {ratio(a, b):>10.2f}")
    print()
    print("server CPU per unit of work (user+system of the server process; lower is better)")
    print(header)
    print("-" * len(header))
    for figure in figures:
        a, b = figure.values[left].cpu_per_unit, figure.values[right].cpu_per_unit
        unit = "CPU ms/MB" if figure.unit == "MB/s" else "CPU us/request"
        label = f"{figure.label} ({unit})"
        print(f"{label:<{width}} {a:>10.1f} {b:>13.1f} {ratio(a, b):>10.2f}")
    notes = [(f.label, n) for f in figures for n in f.notes]
    if notes:
        print()
        for label, note in notes:
            print(f"  note: {label}: {note}")
    print()
    print("* python keep-alive loader (wrk 4.1 cannot time HEAD: it waits for a body)")
    print("first table: ratio > 1 means ecrd is faster, < 1 Distribution is faster")
    print("second table: ratio > 1 means ecrd spends more CPU on the same work")


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


async def measure(args: argparse.Namespace, workdir: Path) -> list[Figure]:
    big_size = (256 if args.quick else 1024) * 1024 * 1024
    wrk_seconds = 3 if args.quick else 10
    # One copy on disk for the client, one in each registry, with room to spare.
    require_free_space(workdir, 3 * big_size + 2 * 2**30, "the benchmark")

    print(f"writing a {big_size // 2**20} MiB test layer under {workdir} ...", flush=True)
    big_path = workdir / "big-layer.bin"
    big_digest = make_big_file(big_path, big_size)
    small = [os.urandom(SMALL_SIZE) for _ in range(SMALL_COUNT)]
    small_blobs = [(sha256_digest(data), data) for data in small]

    ecrd_dir, dist_dir = workdir / "ecrd", workdir / "distribution"
    ecrd_dir.mkdir()
    dist_dir.mkdir()
    servers = [ecrd_server(ecrd_dir), distribution_server(dist_dir)]
    names = tuple(s.name for s in servers)
    results: dict[str, dict[str, Sample]] = {}
    notes: dict[str, list[str]] = {}

    def record(key: str, server: Server, value: Sample) -> None:
        results.setdefault(key, {})[server.name] = value

    with running(*servers):
        for server in servers:
            print(
                f"{server.name}: pid {server.pid}, {server.base}; "
                f"push/pull {big_size // 2**20} MiB ...",
                flush=True,
            )
            push, pull = await big_layer(server, big_path, big_size, big_digest)
            record("big push", server, push)
            record("big pull", server, pull)
            record("big pull curl", server, await curl_pull(server, big_digest, big_size))
        for server in servers:
            print(f"{server.name}: {SMALL_COUNT} x 64 KiB layers ...", flush=True)
            push, pull = await small_layers(server, small_blobs)
            record("small push", server, push)
            record("small pull", server, pull)
        urls = {}
        for server in servers:
            urls[server.name] = await push_manifest(server, small_blobs[0])
        for method in ("HEAD", "GET"):
            for server in servers:
                print(
                    f"{server.name}: python loader {method} manifest by tag, "
                    f"{WRK_CONNECTIONS} connections, {wrk_seconds}s ...",
                    flush=True,
                )
                path = urls[server.name].removeprefix(server.base)
                cpu = server.cpu_seconds()
                rate, count, bad, errors = await hammer(
                    server, path, method, WRK_CONNECTIONS, wrk_seconds, OCI_MANIFEST
                )
                cpu = server.cpu_seconds() - cpu
                record(
                    f"loader {method}", server, Sample(rate, cpu * 1e6 / count if count else 0.0)
                )
                if bad or errors:
                    notes.setdefault(f"loader {method}", []).append(
                        f"{server.name}: {bad} non-2xx, {errors} connection errors"
                    )
        for method in ("GET",):
            for server in servers:
                print(
                    f"{server.name}: wrk {method} manifest by tag, -c {WRK_CONNECTIONS} "
                    f"-t {WRK_THREADS} -d {wrk_seconds}s ...",
                    flush=True,
                )
                sample, wrk_notes = wrk(server, urls[server.name], method, wrk_seconds, workdir)
                record(f"manifest {method}", server, sample)
                notes.setdefault(f"manifest {method}", []).extend(
                    f"{server.name}: {n}" for n in wrk_notes
                )
        for server in servers:
            if server.process is not None and server.process.poll() is not None:
                raise RuntimeError(f"{server.name} died:\n{server.log_tail()}")

    big = f"{big_size // 2**20} MiB layer"
    labels = {
        "big push": (f"push 1 x {big}", "MB/s"),
        "big pull": (f"pull 1 x {big}", "MB/s"),
        "big pull curl": (f"pull 1 x {big}, curl", "MB/s"),
        "small push": (f"push {SMALL_COUNT} x 64 KiB, {SMALL_CONCURRENCY} at once", "MB/s"),
        "small pull": (f"pull {SMALL_COUNT} x 64 KiB, {SMALL_CONCURRENCY} at once", "MB/s"),
        "loader HEAD": (f"manifest HEAD by tag, c={WRK_CONNECTIONS}*", "req/s"),
        "loader GET": (f"manifest GET by tag, c={WRK_CONNECTIONS}*", "req/s"),
        "manifest GET": (f"manifest GET by tag, c={WRK_CONNECTIONS}, wrk", "req/s"),
    }
    figures = [
        Figure(labels[key][0], labels[key][1], results[key], notes.get(key, [])) for key in labels
    ]
    print_table(figures, names)  # type: ignore[arg-type]
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="256 MiB layer, 3 s wrk runs")
    parser.add_argument(
        "--tmp", type=Path, default=None, help="folder for the temporary data (default: TMPDIR)"
    )
    args = parser.parse_args()
    install_uvloop()
    with scratch_dir("ecrd-bench-", args.tmp) as workdir:
        try:
            asyncio.run(measure(args, workdir))
        except (RuntimeError, TimeoutError, httpx.HTTPError) as error:
            print(f"benchmark failed: {error!r}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
