"""Build small OCI image layouts on disk for skopeo and podman to copy (no network needed)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int

    def as_json(self) -> dict[str, object]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


class Layout:
    """An OCI image layout folder: blobs/sha256/<hex>, index.json, oci-layout."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
        self.tops: list[dict[str, object]] = []

    def add_blob(self, data: bytes, media_type: str) -> Descriptor:
        hex_digest = hashlib.sha256(data).hexdigest()
        (self.root / "blobs" / "sha256" / hex_digest).write_bytes(data)
        return Descriptor(media_type, f"sha256:{hex_digest}", len(data))

    def add_image(self, arch: str = "amd64", layer_bytes: int = 1024, seed: str = "") -> Descriptor:
        layer = self.add_blob(layer_tar(f"{seed}{arch}", layer_bytes), OCI_LAYER)
        config = {
            "architecture": arch,
            "os": "linux",
            "config": {"Cmd": ["/hello"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id(self.root, layer)]},
        }
        config_descriptor = self.add_blob(json.dumps(config).encode(), OCI_CONFIG)
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config_descriptor.as_json(),
            "layers": [layer.as_json()],
        }
        return self.add_blob(json.dumps(manifest).encode(), OCI_MANIFEST)

    def add_index(self, images: dict[str, Descriptor]) -> Descriptor:
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {**descriptor.as_json(), "platform": {"architecture": arch, "os": "linux"}}
                for arch, descriptor in images.items()
            ],
        }
        return self.add_blob(json.dumps(index).encode(), OCI_INDEX)

    def tag(self, descriptor: Descriptor, tag: str) -> None:
        self.tops.append(
            {**descriptor.as_json(), "annotations": {"org.opencontainers.image.ref.name": tag}}
        )
        (self.root / "index.json").write_text(
            json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": self.tops})
        )


def layer_tar(seed: str, size: int) -> bytes:
    """A gzipped tar holding one file of `size` pseudo-random bytes derived from `seed`."""
    content = _pseudo_random(seed, size)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("hello")
        info.size = len(content)
        info.mode = 0o755
        tar.addfile(info, io.BytesIO(content))
    return gzip.compress(buffer.getvalue(), mtime=0)


def diff_id(root: Path, layer: Descriptor) -> str:
    data = (root / "blobs" / "sha256" / layer.digest.split(":")[1]).read_bytes()
    return "sha256:" + hashlib.sha256(gzip.decompress(data)).hexdigest()


def _pseudo_random(seed: str, size: int) -> bytes:
    out = bytearray()
    block = hashlib.sha256(seed.encode()).digest()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:size])


def single_image(root: Path, tag: str = "latest", seed: str = "") -> Descriptor:
    layout = Layout(root)
    descriptor = layout.add_image(seed=seed)
    layout.tag(descriptor, tag)
    return descriptor


def multi_arch_image(root: Path, tag: str = "latest", seed: str = "") -> Descriptor:
    layout = Layout(root)
    images = {arch: layout.add_image(arch, seed=seed) for arch in ("amd64", "arm64")}
    index = layout.add_index(images)
    layout.tag(index, tag)
    return index


if __name__ == "__main__":  # build a demo layout: python tests/oci_layouts.py DIR
    import sys

    multi_arch_image(Path(sys.argv[1]))
    sys.exit(0)
