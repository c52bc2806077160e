"""A Docker engine of the tests' own: one `dockerd` per session, and a docker client bound to it.

    <run folder, short, under /tmp>     docker.sock, docker.pid, exec/ (containerd's sockets)
    <state folder, pytest's tmp>        daemon.json ({}), data/ (vfs layers), dockerd.log

Nothing of the host's engine is used: no /var/run/docker.sock, no /etc/docker/daemon.json, no
~/.docker. The daemon runs without networking of its own (no bridge, no iptables) because the
tests only push and pull over loopback; vfs copies layers instead of needing overlay mounts.
No --insecure-registry is given: dockerd treats 127.0.0.0/8 as insecure (plain HTTP) by default.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.integration.helpers import CommandFailed, layout_blob
from tests.oci_layouts import Layout

DOCKERD = "dockerd"
# Debian's client (docker.io, the same release as its dockerd) rather than the Docker 28
# client in /usr/local/bin: both talk to this daemon, but Debian's speaks its API version
# without negotiating down, and scripts/install-test-tools installs it with the daemon.
DOCKER_CLIENT = "/usr/bin/docker"
DOCKER_COMMAND_TIMEOUT_SECONDS = 120
START_TIMEOUT_SECONDS = 60
START_POLL_SECONDS = 0.2
STOP_TIMEOUT_SECONDS = 20
OUTPUT_TAIL_CHARACTERS = 2000
PUSHED_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64}) size: \d+")


class EngineUnavailable(RuntimeError):
    """The engine cannot run here (not installed, not root, or it failed to start)."""


def output_tail(result: subprocess.CompletedProcess[str]) -> str:
    """The last part of a command's output, for assertion messages (docker is chatty)."""
    stdout = result.stdout[-OUTPUT_TAIL_CHARACTERS:]
    stderr = result.stderr[-OUTPUT_TAIL_CHARACTERS:]
    return f"exit {result.returncode}\nstdout: {stdout}\nstderr: {stderr}"


def run_command(
    command: list[str],
    *,
    environment: dict[str, str],
    stdin_text: str | None = None,
    check: bool = True,
    timeout: float = DOCKER_COMMAND_TIMEOUT_SECONDS,
) -> subprocess.CompletedProcess[str]:
    """Run `command` with a timeout and `stdin_text` on its standard input; with `check`,
    fail with the tail of its output when it exits non-zero."""
    result = subprocess.run(
        command,
        input=stdin_text if stdin_text is not None else "",
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
        env=environment,
        check=False,
    )
    if check and result.returncode != 0:
        raise CommandFailed(f"{' '.join(command)}: {output_tail(result)}")
    return result


class DockerEngine:
    """A `dockerd` child process listening on a unix socket of its own."""

    def __init__(self, state_folder: Path) -> None:
        self.state_folder = state_folder
        # Unix socket paths are limited to about 100 bytes, and containerd puts its own
        # sockets under the exec root: both go in a short folder of their own.
        self.run_folder = Path(tempfile.mkdtemp(prefix="ecrd-docker-", dir="/tmp"))
        self.socket_path = self.run_folder / "docker.sock"
        self.data_root = state_folder / "data"
        self.log_path = state_folder / "dockerd.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        """What DOCKER_HOST is set to for the clients of this engine."""
        return f"unix://{self.socket_path}"

    def start(self) -> None:
        """Start dockerd and wait (bounded) until it answers; EngineUnavailable if it cannot."""
        dockerd = shutil.which(DOCKERD)
        if dockerd is None or not Path(DOCKER_CLIENT).exists():
            raise EngineUnavailable(
                f"{DOCKERD} or {DOCKER_CLIENT} is not installed (scripts/install-test-tools)"
            )
        if os.geteuid() != 0:
            raise EngineUnavailable("dockerd needs root here")
        self.state_folder.mkdir(parents=True, exist_ok=True)
        config_file = self.state_folder / "daemon.json"
        config_file.write_text("{}")  # so that /etc/docker/daemon.json is never read
        command = [
            dockerd,
            "--iptables=false", "--ip6tables=false", "--bridge=none",
            "--storage-driver=vfs",
            "--config-file", str(config_file),
            "--data-root", str(self.data_root),
            "--exec-root", str(self.run_folder / "exec"),
            "--pidfile", str(self.run_folder / "docker.pid"),
            "-H", self.host,
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        if self.process is None:
            raise RuntimeError("dockerd was not started")
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        last_answer = "no answer yet"
        for _ in range(int(START_TIMEOUT_SECONDS / START_POLL_SECONDS) + 1):
            if time.monotonic() > deadline:
                break
            if self.process.poll() is not None:
                raise EngineUnavailable(
                    f"dockerd exited {self.process.returncode} at start: {self.log_tail()}"
                )
            if self.socket_path.exists():
                probe = run_command(
                    [DOCKER_CLIENT, "version", "--format", "{{.Server.Version}}"],
                    environment={**client_base_environment(), "DOCKER_HOST": self.host},
                    check=False,
                    timeout=10,
                )
                if probe.returncode == 0 and probe.stdout.strip():
                    return
                last_answer = output_tail(probe)
            time.sleep(START_POLL_SECONDS)
        self.stop()
        raise EngineUnavailable(
            f"dockerd did not answer in {START_TIMEOUT_SECONDS}s: {last_answer}\n{self.log_tail()}"
        )

    def log_tail(self) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-OUTPUT_TAIL_CHARACTERS:]

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a bound; dockerd takes its containerd with it."""
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
            self.process = None
        # dockerd bind-mounts its data root onto itself and undoes it only on a clean stop.
        if os.path.ismount(self.data_root):
            subprocess.run(["umount", str(self.data_root)], check=False, timeout=30)
        shutil.rmtree(self.run_folder, ignore_errors=True)


def client_base_environment() -> dict[str, str]:
    """The environment without any DOCKER_* setting of the developer's shell."""
    return {key: value for key, value in os.environ.items() if not key.startswith("DOCKER_")}


@dataclass
class Docker:
    """The docker client bound to one engine and one client config folder (its logins)."""

    engine: DockerEngine
    config_folder: Path
    environment: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.config_folder.mkdir(parents=True, exist_ok=True)
        self.environment = {
            **client_base_environment(),
            "DOCKER_HOST": self.engine.host,
            "DOCKER_CONFIG": str(self.config_folder),
            # `docker manifest` is experimental in the 20.10 client.
            "DOCKER_CLI_EXPERIMENTAL": "enabled",
        }

    def __call__(
        self, *args: str, stdin_text: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return run_command(
            [DOCKER_CLIENT, *args], environment=self.environment, stdin_text=stdin_text, check=check
        )

    def login(
        self, registry_host: str, password: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self(
            "login", "--username", "AWS", "--password-stdin", registry_host,
            stdin_text=password, check=check,
        )  # fmt: skip

    def push(self, reference: str) -> str:
        """Push `reference` and return the manifest digest docker reports."""
        result = self("push", reference)
        match = PUSHED_DIGEST.search(result.stdout)
        if match is None:
            raise CommandFailed(
                f"docker push {reference} reported no digest: {output_tail(result)}"
            )
        return match.group(1)

    def image_id(self, reference: str) -> str:
        return self("image", "inspect", "--format", "{{.Id}}", reference).stdout.strip()

    def has_image(self, reference: str) -> bool:
        return self("image", "inspect", reference, check=False).returncode == 0

    def load_layout(
        self, layout: Path, layout_tag: str, local_name: str, skopeo_policy: Path
    ) -> None:
        """Load an OCI layout's image into the engine as `local_name`, offline: skopeo writes a
        docker-archive, docker loads it."""
        archive = layout.parent / f"{layout.name}-{layout_tag}.tar"
        run_command(
            [
                "skopeo", "--policy", str(skopeo_policy), "copy", "--quiet",
                f"oci:{layout}:{layout_tag}", f"docker-archive:{archive}:{local_name}",
            ],
            environment=dict(os.environ),
        )  # fmt: skip
        self("load", "--input", str(archive))


@dataclass(frozen=True)
class LoadedImage:
    """An image loaded into the engine: its local name and its config digest (= image id)."""

    local_name: str
    image_id: str


def load_image(
    docker: Docker,
    folder: Path,
    policy: Path,
    arch: str = "amd64",
    seed: str | None = None,
    layer_bytes: int = 512,
) -> LoadedImage:
    """Build a single-platform image (tiny by default) offline and load it into the engine."""
    seed = seed or uuid.uuid4().hex
    layout_folder = folder / f"layout-{seed[:12]}-{arch}"
    layout = Layout(layout_folder)
    manifest_descriptor = layout.add_image(arch, layer_bytes=layer_bytes, seed=seed)
    layout.tag(manifest_descriptor, "v1")
    manifest = json.loads(layout_blob(layout_folder, manifest_descriptor.digest))
    local_name = f"ecrd-local/{seed[:12]}-{arch}:v1"
    docker.load_layout(layout_folder, "v1", local_name, policy)
    return LoadedImage(local_name, manifest["config"]["digest"])
