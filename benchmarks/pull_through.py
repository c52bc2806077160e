"""The pull-through cache: a first pull through ecrd and a cached pull, against a direct pull
from the upstream (CNCF Distribution, no auth) with the same client.

    .venv/bin/python benchmarks/pull_through.py [--layers N] [--layer-mib M] [--rounds R]
                                                [--tmp DIR]

The upstream holds an image of N layers of M MiB of random bytes; ecrd (auth on, ECR token
login) has a rule mapping `quay/` to it (quay.io, through `upstream_endpoints`). Each round
pulls a fresh copy of the image (its own repository) directly, then through ecrd for the
first time, then through ecrd from its cache: the manifest, then every layer, four at once,
hashed as they arrive. Prints seconds and the ratios to the direct pull. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import boto3  # noqa: E402
import httpx  # noqa: E402
from servers import (  # noqa: E402
    REGION,
    Server,
    distribution_server,
    ecrd_server,
    get_blob_to_devnull,
    new_client,
    put_blob,
    running,
    scratch_dir,
    sha256_digest,
)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
PARALLEL_LAYERS = 4


async def push_image(upstream: Server, repo: str, layers: list[bytes]) -> None:
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    async with new_client(upstream) as client:
        await put_blob(client, upstream.base, repo, sha256_digest(config), config, len(config))
        await asyncio.gather(
            *(
                put_blob(client, upstream.base, repo, sha256_digest(layer), layer, len(layer))
                for layer in layers
            )
        )
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256_digest(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": sha256_digest(layer),
                    "size": len(layer),
                }
                for layer in layers
            ],
        }
        response = await client.put(
            f"{upstream.base}/v2/{repo}/manifests/1",
            content=json.dumps(manifest),
            headers={"Content-Type": OCI_MANIFEST},
        )
        if response.status_code != 201:
            raise RuntimeError(f"PUT manifest upstream: {response.status_code}")


async def pull(server: Server, repo: str) -> float:
    """Seconds to pull the image's manifest, then its layers (four at once, each hashed)."""
    started = time.perf_counter()
    async with new_client(server, PARALLEL_LAYERS) as client:
        response = await client.get(
            f"{server.base}/v2/{repo}/manifests/1", headers={"Accept": OCI_MANIFEST}
        )
        if response.status_code != 200:
            raise RuntimeError(f"{server.name} GET manifest: {response.status_code}")
        layers = response.json()["layers"]
        limiter = asyncio.Semaphore(PARALLEL_LAYERS)

        async def layer(descriptor: dict[str, object]) -> None:
            async with limiter:
                hasher = hashlib.sha256()
                digest, size = str(descriptor["digest"]), int(str(descriptor["size"]))
                await get_blob_to_devnull(client, server.base, repo, digest, size, hasher)
                if "sha256:" + hasher.hexdigest() != digest:
                    raise RuntimeError(f"{server.name}: {digest} arrived with other bytes")

        await asyncio.gather(*(layer(descriptor) for descriptor in layers))
    return time.perf_counter() - started


def add_rule(ecrd: Server) -> None:
    assert ecrd.access_key is not None
    ecr = boto3.client(
        "ecr",
        endpoint_url=ecrd.base,
        region_name=REGION,
        aws_access_key_id=ecrd.access_key.access_key_id,
        aws_secret_access_key=ecrd.access_key.secret_access_key,
    )
    ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="quay", upstreamRegistryUrl="quay.io")


async def measure(upstream: Server, ecrd: Server, args: argparse.Namespace) -> None:
    size = args.layer_mib * 1024 * 1024
    print(f"image: {args.layers} layers of {args.layer_mib} MiB; {args.rounds} rounds")
    print(f"{'round':>5} {'direct s':>9} {'first s':>9} {'cached s':>9} {'first/direct':>13} "
          f"{'cached/direct':>14}")  # fmt: skip
    for number in range(1, args.rounds + 1):
        repo = f"bench/image{number}"
        layers = [os.urandom(size) for _ in range(args.layers)]
        await push_image(upstream, repo, layers)
        del layers
        direct = await pull(upstream, repo)
        first = await pull(ecrd, f"quay/{repo}")
        cached = await pull(ecrd, f"quay/{repo}")
        print(f"{number:>5} {direct:>9.2f} {first:>9.2f} {cached:>9.2f} "
              f"{first / direct:>12.2f}x {cached / direct:>13.2f}x")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--layer-mib", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tmp", type=Path, default=None)
    args = parser.parse_args()
    if not (1 <= args.layers <= 64 and 1 <= args.layer_mib <= 1024 and 1 <= args.rounds <= 10):
        parser.error("--layers 1-64, --layer-mib 1-1024, --rounds 1-10")
    with scratch_dir("ecrd-bench-pull-through-", args.tmp) as workdir:
        upstream = distribution_server(workdir)
        endpoints = json.dumps({"quay.io": upstream.base})
        ecrd = ecrd_server(workdir, {"ECRD_UPSTREAM_ENDPOINTS": endpoints})
        with running(upstream, ecrd):
            add_rule(ecrd)
            try:
                asyncio.run(measure(upstream, ecrd, args))
            except httpx.HTTPError as error:
                print(f"failed: {error!r}\n{ecrd.log_tail()}", file=sys.stderr)
                raise SystemExit(1) from None


if __name__ == "__main__":
    main()
