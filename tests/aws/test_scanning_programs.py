"""Image scanning of Go programs (the build information Go links into every executable: a real
one, the Debian `runc` the Docker engine brings, and one written here in the same format with
module dependencies) and of an RPM distribution (an rpmdb.sqlite made by the real `rpm` from
packages `rpmbuild` built), against OSV advisories in the Go and AlmaLinux ecosystems."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.aws.scanning_helpers import (
    advisory,
    findings_of,
    import_advisories,
    layer,
    push_layers,
)
from tests.conftest import EcrdServer
from tests.scanning.rpm_databases import berkeley_db_of, rpm_database

# The framing Go writes around the module information (cmd/go's infoStart / infoEnd).
_INFO_START = bytes.fromhex("3077af0c9274080241e1c107e6d618e6")
_INFO_END = bytes.fromhex("f932433186182072008242104116d8f2")


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def go_program(go_version: str, module_lines: list[str]) -> bytes:
    """An ELF file carrying Go 1.18+ build information as the Go linker lays it out: the
    magic at a 16-byte boundary, pointer size 8, the inline-strings flag, then the version
    and the framed module information as uvarint-length strings."""
    info = _INFO_START + ("\n".join(module_lines) + "\n").encode() + _INFO_END
    header = b"\xff Go buildinf:" + bytes([8, 2]) + bytes(16)
    strings = _uvarint(len(go_version)) + go_version.encode() + _uvarint(len(info)) + info
    return b"\x7fELF" + bytes(4092) + header + strings + bytes(256)


def semver_advisory(identifier: str, package: str, events: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "id": identifier,
        "summary": f"{package} advisory",
        "affected": [
            {
                "package": {"ecosystem": "Go", "name": package},
                "ranges": [{"type": "SEMVER", "events": events}],
            }
        ],
        "database_specific": {"severity": "HIGH"},
    }


def fixed(version: str) -> list[dict[str, str]]:
    return [{"introduced": "0"}, {"fixed": version}]


GO_ADVISORIES = [
    # the Go toolchain (OSV's `stdlib`): runc's go1.19.8 is before 1.19.9
    semver_advisory("GO-2023-0001", "stdlib", fixed("1.19.9")),
    # only 1.21.0 up to 1.21.4: the written program's go1.21.3
    semver_advisory("GO-2023-0002", "stdlib", [{"introduced": "1.21.0"}, {"fixed": "1.21.4"}]),
    semver_advisory("GO-2023-0003", "golang.org/x/net", fixed("0.17.0")),
    # fixed exactly at the linked version: not affected
    semver_advisory("GO-2023-0004", "golang.org/x/net", fixed("0.7.0")),
    # the replacement is what was linked in, not the module it replaced
    semver_advisory("GO-2023-0005", "github.com/new/lib", fixed("1.3.0")),
    semver_advisory("GO-2023-0006", "github.com/old/lib", fixed("9.0.0")),
    # the main module
    semver_advisory("GO-2023-0007", "example.com/app", fixed("1.0.1")),
    # a program a later layer deleted, and a copy that is not executable
    semver_advisory("GO-2023-0008", "github.com/gone/lib", fixed("9.0.0")),
    semver_advisory("GO-2023-0009", "github.com/not/run", fixed("9.0.0")),
]

RPM_ADVISORIES = [
    # openssl-libs 1:3.0.7-24.el9 is before 1:3.0.7-25.el9
    advisory(
        "ALSA-2023:0001",
        "AlmaLinux:9",
        "openssl-libs",
        "1:3.0.7-25.el9",
        "HIGH",
        aliases=["CVE-2023-1001"],
    ),  # fmt: skip
    # without an epoch, 3.0.8 is epoch 0: older than the installed epoch 1
    advisory("ALSA-2023:0002", "AlmaLinux:9", "openssl-libs", "3.0.8-1.el9", "CRITICAL"),
    # fixed exactly at the installed version
    advisory("ALSA-2023:0003", "AlmaLinux:9", "bash", "5.1.8-6.el9", "MEDIUM"),
    # another release's
    advisory("ALSA-2023:0004", "AlmaLinux:8", "bash", "9.9-1.el8", "HIGH"),
    # `~` sorts before the release it precedes: 2.34~rc1 < 2.34
    advisory("ALSA-2023:0005", "AlmaLinux:9", "glibc", "2.34-1.el9", "LOW"),
    # Amazon Linux 2's: bash before 5.1.8-7 is affected, glibc is fixed at what is installed
    advisory("ALAS2-2023-0001", "Amazon Linux:2", "bash", "5.1.8-7.el9", "HIGH"),
    advisory("ALAS2-2023-0002", "Amazon Linux:2", "glibc", "2.34~rc1-1.el9", "HIGH"),
]


@pytest.fixture(scope="module")
def programs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EcrdServer]:
    folder = tmp_path_factory.mktemp("scan-programs")
    instance = EcrdServer(folder / "data", environment={"ECRD_JOB_POLL_SECONDS": "0.5"})
    instance.start()
    import_advisories(instance, folder, GO_ADVISORIES + RPM_ADVISORIES)
    yield instance
    instance.stop()


def real_go_program() -> Path:
    for candidate in (shutil.which("runc"), "/usr/sbin/runc", "/usr/bin/runc"):
        if candidate and Path(candidate).is_file():
            return Path(candidate).resolve()
    pytest.fail("runc (a Go program; Debian's docker.io brings it) is not installed")


def test_go_programs_report_their_toolchain_and_modules(programs_server: EcrdServer) -> None:
    ecr = programs_server.ecr()
    ecr.create_repository(repositoryName="scan/go")
    runc = real_go_program()
    app = go_program(
        "go1.21.3",
        [
            "path\texample.com/app/cmd/app",
            "mod\texample.com/app\tv1.0.0\th1:abc=",
            "dep\tgolang.org/x/net\tv0.7.0\th1:def=",
            "dep\tgithub.com/old/lib\tv1.0.0",
            "=>\tgithub.com/new/lib\tv1.2.0\th1:ghi=",
            "build\t-compiler=gc",
        ],
    )
    gone = go_program("go1.21.3", ["dep\tgithub.com/gone/lib\tv1.0.0\th1:x="])
    not_run = go_program("go1.21.3", ["dep\tgithub.com/not/run\tv1.0.0\th1:x="])
    base = layer(
        {
            "usr/sbin/runc": runc.read_bytes(),
            "usr/local/bin/app": app,
            "opt/tools/gone": gone,
            "opt/data/not-run": not_run,  # mode 0644: not a program
        },
        executable={"usr/sbin/runc", "usr/local/bin/app", "opt/tools/gone"},
    )
    top = layer({"opt/tools/gone": None})
    push_layers(ecr, "scan/go", [base, top], "v1")
    ecr.start_image_scan(repositoryName="scan/go", imageId={"imageTag": "v1"})
    digest = ecr.describe_images(repositoryName="scan/go")["imageDetails"][0]["imageDigest"]
    go_version = runc_go_version(runc)
    assert findings_of(ecr, "scan/go", digest) == sorted(
        [
            ("GO-2023-0001", "stdlib", go_version, "HIGH"),
            ("GO-2023-0002", "stdlib", "1.21.3", "HIGH"),
            ("GO-2023-0003", "golang.org/x/net", "v0.7.0", "HIGH"),
            ("GO-2023-0005", "github.com/new/lib", "v1.2.0", "HIGH"),
            ("GO-2023-0007", "example.com/app", "v1.0.0", "HIGH"),
        ]
    )


def runc_go_version(runc: Path) -> str:
    """The Go version runc was built with, as `runc --version` prints it (`go: go1.19.8`),
    in OSV's form; the test expects GO-2023-0001 to apply to it, so it must be older."""
    printed = subprocess.run([str(runc), "--version"], capture_output=True, text=True, timeout=30)
    line = next(item for item in printed.stdout.splitlines() if item.startswith("go:"))
    version = line.removeprefix("go:").strip().removeprefix("go")
    parts = [int(part) for part in version.split(".")] + [0]
    assert parts[:3] < [1, 19, 9], f"runc was built with {version}: the fixture needs older"
    return f"{parts[0]}.{parts[1]}.{parts[2]}"


def scanned(
    server: EcrdServer, repository: str, files: Mapping[str, bytes | None]
) -> list[tuple[str, str, str, str]]:
    """The findings of a one-layer image of `files`, pushed to a new repository and scanned."""
    ecr = server.ecr()
    ecr.create_repository(repositoryName=repository)
    digest = push_layers(ecr, repository, [layer(files)], "v1")
    ecr.start_image_scan(repositoryName=repository, imageId={"imageDigest": digest})
    return findings_of(ecr, repository, digest)


def test_an_rpm_distribution_is_read_from_its_rpm_database(
    programs_server: EcrdServer, tmp_path: Path
) -> None:
    os_release = b'NAME="AlmaLinux"\nID="almalinux"\nVERSION_ID="9.3"\n'
    image = {"etc/os-release": os_release, "var/lib/rpm/rpmdb.sqlite": rpm_database(tmp_path)}
    assert scanned(programs_server, "scan/alma", image) == [
        ("ALSA-2023:0005", "glibc", "2.34~rc1-1.el9", "LOW"),
        ("CVE-2023-1001", "openssl-libs", "1:3.0.7-24.el9", "HIGH"),
    ]


def test_amazon_linux_2_is_read_from_its_berkeley_db(
    programs_server: EcrdServer, tmp_path: Path
) -> None:
    # Given an Amazon Linux 2 image, whose rpm keeps its packages in a Berkeley DB
    image = {
        "etc/os-release": b'NAME="Amazon Linux"\nID="amzn"\nVERSION_ID="2"\n',
        "var/lib/rpm/Packages": berkeley_db_of(rpm_database(tmp_path), tmp_path),
    }
    # Then its packages meet Amazon Linux 2's advisories, and no other release's
    assert scanned(programs_server, "scan/al2", image) == [
        ("ALAS2-2023-0001", "bash", "5.1.8-6.el9", "HIGH"),
    ]
