"""Fixtures for driving skopeo, podman and oras against the session's ecrd server."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EcrdServer
from tests.integration.docker_engine import Docker, DockerEngine, EngineUnavailable
from tests.integration.helpers import run, run_bytes

REGISTRIES_CONF = 'unqualified-search-registries = []\nshort-name-mode = "disabled"\n'
POLICY = {"default": [{"type": "insecureAcceptAnything"}]}


@pytest.fixture(scope="session")
def containers_config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A registries.conf and policy.json of our own, so the host's settings cannot leak in."""
    folder = tmp_path_factory.mktemp("containers-config")
    registries = folder / "registries.conf"
    registries.write_text(REGISTRIES_CONF)
    policy = folder / "policy.json"
    policy.write_text(json.dumps(POLICY))
    return {"registries": registries, "policy": policy}


def write_auth_file(path: Path, host: str, password: str, username: str = "AWS") -> Path:
    """A containers auth file (docker config format) holding one login."""
    login = base64.b64encode(f"{username}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {host: {"auth": login}}}))
    return path


@pytest.fixture(scope="session")
def client_environment(
    server: EcrdServer,
    containers_config: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, str]:
    """skopeo's and podman's environment: our config, and logged in to the server as its
    root with a registry token (as `aws ecr get-login-password | podman login` leaves it)."""
    environment = dict(os.environ)
    environment["CONTAINERS_REGISTRIES_CONF"] = str(containers_config["registries"])
    auth_file = tmp_path_factory.mktemp("auth") / "auth.json"
    write_auth_file(auth_file, server.host, server.registry_password())
    environment["REGISTRY_AUTH_FILE"] = str(auth_file)
    return environment


class Skopeo:
    """skopeo with our policy, plain HTTP to the test registry, and a timeout on every call."""

    def __init__(self, server: EcrdServer, policy: Path, environment: dict[str, str]) -> None:
        self.server = server
        self.policy = policy
        self.environment = environment

    def ref(self, repository: str, reference: str) -> str:
        separator = "@" if reference.startswith("sha256:") else ":"
        return f"docker://{self.server.host}/{repository}{separator}{reference}"

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(
            ["skopeo", "--policy", str(self.policy), *args],
            check=check,
            env=self.environment,
        )

    def push(self, layout: Path, tag: str, repository: str, dest_tag: str, *extra: str) -> None:
        self(
            "copy", "--dest-tls-verify=false", "--preserve-digests", *extra,
            f"oci:{layout}:{tag}", self.ref(repository, dest_tag),
        )  # fmt: skip

    def push_converted(
        self, layout: Path, tag: str, repository: str, dest_tag: str, *extra: str
    ) -> None:
        """Copy to the registry letting skopeo rewrite manifests (so digests may change)."""
        self(
            "copy", "--dest-tls-verify=false", *extra,
            f"oci:{layout}:{tag}", self.ref(repository, dest_tag),
        )  # fmt: skip

    def pull(self, repository: str, reference: str, layout: Path, tag: str, *extra: str) -> None:
        self(
            "copy", "--src-tls-verify=false", "--preserve-digests", *extra,
            self.ref(repository, reference), f"oci:{layout}:{tag}",
        )  # fmt: skip

    def inspect_raw(
        self, repository: str, reference: str, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        """`skopeo inspect --raw`: stdout holds the manifest bytes exactly as served."""
        return run_bytes(
            [
                "skopeo", "--policy", str(self.policy),
                "inspect", "--raw", "--tls-verify=false", self.ref(repository, reference),
            ],
            check=check,
            env=self.environment,
        )  # fmt: skip


@pytest.fixture(scope="session")
def skopeo(
    server: EcrdServer, containers_config: dict[str, Path], client_environment: dict[str, str]
) -> Skopeo:
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo is not installed")
    return Skopeo(server, containers_config["policy"], client_environment)


class Podman:
    """podman confined to a VFS store, run root and tmp dir of its own."""

    def __init__(self, state: Path, policy: Path, environment: dict[str, str]) -> None:
        self.global_args = [
            "--root", str(state / "root"),
            "--runroot", str(state / "runroot"),
            "--tmpdir", str(state / "tmp"),
            "--storage-driver", "vfs",
            "--cgroup-manager", "cgroupfs",
            "--events-backend", "file",
        ]  # fmt: skip
        self.policy = policy
        self.environment = environment

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(["podman", *self.global_args, *args], check=check, env=self.environment)

    def pull(self, image: str, *extra: str) -> str:
        """Pull `image` over plain HTTP and return the local image id."""
        result = self(
            "pull", "--quiet", "--tls-verify=false", "--signature-policy", str(self.policy),
            *extra, image,
        )  # fmt: skip
        return result.stdout.strip().splitlines()[-1]

    def push(self, source: str, destination: str) -> None:
        self(
            "push", "--quiet", "--tls-verify=false", "--signature-policy", str(self.policy),
            source, destination,
        )  # fmt: skip

    def image_inspect(self, image: str) -> dict[str, Any]:
        result = self("image", "inspect", image)
        documents = json.loads(result.stdout)
        assert len(documents) == 1
        return dict(documents[0])


@pytest.fixture(scope="session")
def podman(
    tmp_path_factory: pytest.TempPathFactory,
    containers_config: dict[str, Path],
    client_environment: dict[str, str],
) -> Iterator[Podman]:
    """A working podman, probed once with `podman info`; skips the tests when it cannot run."""
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    instance = Podman(
        tmp_path_factory.mktemp("podman"), containers_config["policy"], client_environment
    )
    probe = instance("info", "--format", "{{.Store.GraphDriverName}}", check=False)
    if probe.returncode != 0 or probe.stdout.strip() != "vfs":
        pytest.skip(
            f"podman cannot run here (exit {probe.returncode}): "
            f"{(probe.stderr or probe.stdout).strip()[-500:]}"
        )
    yield instance
    instance("rmi", "--all", "--force", check=False)


# The Docker engine: one dockerd for the session (docker_engine.py).


def engine_missing(reason: str) -> None:
    """Under CI a missing or broken engine is a failure; elsewhere the tests are skipped."""
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"the Docker engine is required under CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerEngine]:
    engine = DockerEngine(tmp_path_factory.mktemp("docker-engine"))
    try:
        engine.start()
    except EngineUnavailable as error:
        engine.stop()
        engine_missing(str(error))
    yield engine
    engine.stop()


@pytest.fixture
def docker(docker_engine: DockerEngine, tmp_path: Path) -> Docker:
    """The docker client with a config folder (logins) of the test's own, logged in nowhere."""
    return Docker(docker_engine, tmp_path / "docker-config")


@pytest.fixture
def skopeo_policy(containers_config: dict[str, Path]) -> Path:
    """The signature policy for skopeo, which writes the archives docker loads."""
    if shutil.which("skopeo") is None:
        engine_missing("skopeo is not installed (it builds the archives docker loads)")
    return containers_config["policy"]
