"""ecrd's memory while a 5 GiB layer goes in and comes back out.

The layer is generated on the fly (never held whole, on the client or on disk there), sent as
POST, one streamed PATCH, then PUT with the digest hashed on the way out; then pulled back and
checked (size and sha256). The ecrd process's RSS (with any children) is sampled every 0.2 s;
the peak must stay under the limit. Run through benchmarks/run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psutil
from servers import (
    CHUNK,
    ecrd_server,
    get_blob_to_devnull,
    install_uvloop,
    new_client,
    patch_then_put,
    require_free_space,
    running,
    scratch_dir,
)

LAYER_SIZE = 5 * 2**30
LIMIT = 200 * 2**20
SAMPLE_SECONDS = 0.2
REPO = "bench/memory"


class RssSampler:
    """Samples a process tree's resident memory from a thread, so a busy loop cannot skew it."""

    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.peak = 0
        self.samples = 0

    def current(self) -> int:
        total = 0
        for process in [self._process, *self._process.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += process.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.current())
                self.samples += 1
            except psutil.NoSuchProcess:
                return
            self._stop.wait(SAMPLE_SECONDS)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


async def generated(size: int, hasher: hashlib._Hash) -> AsyncIterator[bytes]:
    """`size` pseudo-random bytes in 1 MiB pieces: one random block, a counter in front of it."""
    block = bytearray(os.urandom(CHUNK))
    sent = 0
    number = 0
    while sent < size:
        block[:8] = number.to_bytes(8, "big")
        piece = bytes(block[: min(CHUNK, size - sent)])
        hasher.update(piece)
        sent += len(piece)
        number += 1
        yield piece


async def check(workdir: Path, size: int, limit: int) -> bool:
    server = ecrd_server(workdir)
    with running(server):
        sampler_baseline = RssSampler(server.pid).current()
        print(
            f"ecrd: pid {server.pid}, {server.base}; RSS at rest {sampler_baseline / 2**20:.1f} MiB"
        )
        with RssSampler(server.pid) as sampler:
            async with new_client(server, 1) as client:
                hasher = hashlib.sha256()
                started = time.perf_counter()
                digest = await patch_then_put(
                    client,
                    server.base,
                    REPO,
                    generated(size, hasher),
                    size,
                    lambda: "sha256:" + hasher.hexdigest(),
                )
                pushed = time.perf_counter() - started
                print(
                    f"pushed {size / 2**30:.0f} GiB in {pushed:.1f} s "
                    f"({size / pushed / 1e6:.0f} MB/s); peak RSS so far "
                    f"{sampler.peak / 2**20:.1f} MiB",
                    flush=True,
                )
                check_hash = hashlib.sha256()
                started = time.perf_counter()
                await get_blob_to_devnull(client, server.base, REPO, digest, size, check_hash)
                pulled = time.perf_counter() - started
                if "sha256:" + check_hash.hexdigest() != digest:
                    raise RuntimeError("pulled bytes do not match the pushed digest")
                print(
                    f"pulled {size / 2**30:.0f} GiB in {pulled:.1f} s "
                    f"({size / pulled / 1e6:.0f} MB/s), digest verified",
                    flush=True,
                )
        if server.process is not None and server.process.poll() is not None:
            raise RuntimeError(f"ecrd died:\n{server.log_tail()}")
    peak = sampler.peak
    verdict = "PASS" if peak < limit else "FAIL"
    print(
        f"ecrd peak RSS {peak / 2**20:.1f} MiB over {sampler.samples} samples "
        f"(limit {limit / 2**20:.0f} MiB): {verdict}"
    )
    return peak < limit


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tmp", type=Path, default=None, help="folder for the temporary data")
    parser.add_argument("--size-gib", type=float, default=LAYER_SIZE / 2**30)
    parser.add_argument("--limit-mib", type=float, default=LIMIT / 2**20)
    args = parser.parse_args()
    size = int(args.size_gib * 2**30)
    install_uvloop()
    with scratch_dir("ecrd-memory-", args.tmp) as workdir:
        # ecrd keeps the upload, then the blob (a rename): one copy, plus room to spare.
        require_free_space(workdir, size + 2 * 2**30, "the memory check")
        try:
            ok = asyncio.run(check(workdir, size, int(args.limit_mib * 2**20)))
        except (RuntimeError, TimeoutError, httpx.HTTPError) as error:
            print(f"memory check failed: {error!r}", file=sys.stderr)
            return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
