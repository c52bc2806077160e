"""CNCF Distribution (Debian's `docker-registry`, 2.8) as a real upstream registry on loopback.

    require_distribution()                      # skips the test when the tools are missing
    registry = DistributionRegistry(folder, users={"puller": "s3cret"})  # {} or None: open
    registry.start()                            # a free 127.0.0.1 port; waits until it answers
    registry.push(skopeo_policy(folder), layout, "v1", "library/app", "1")  # skopeo, digests kept
    digest = registry.push_blob("library/app", b"...")                      # plain HTTP
    registry.put_manifest("library/app", "1", manifest_bytes, media_type)
    registry.url, registry.host, registry.login   # http://127.0.0.1:<port>, its host, (user, pw)
    registry.requests_for("/v2/library/app/manifests/1")  # GETs it served, from its log
    registry.stop()                             # SIGTERM (then SIGKILL) to its PID

The registry keeps its storage folder and port across `stop()` and `start()`, so a test can take
it away and bring it back under the same URL. With `users` it asks for htpasswd Basic auth
(`htpasswd -Bbn`, bcrypt); without, anyone may push and pull. `with DistributionRegistry(...)
as registry:` starts and stops it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from types import TracebackType

import httpx
import pytest

from tests.conftest import free_port

START_SECONDS = 15.0
STOP_SECONDS = 10.0
COMMAND_SECONDS = 120.0
# A port taken between probing and binding makes the first start fail: try another, a few times.
START_ATTEMPTS = 3
TOOLS = ("docker-registry", "htpasswd", "skopeo")


def require_distribution() -> None:
    """Skip the test unless docker-registry, htpasswd and skopeo are installed (they are
    what scripts/install-test-tools installs); under CI, fail it instead."""
    for tool in TOOLS:
        if shutil.which(tool) is None:
            reason = f"{tool} is not installed (scripts/install-test-tools installs it)"
            if os.environ.get("CI") == "true":
                pytest.fail(f"CI: {reason}")
            pytest.skip(reason)


def skopeo_policy(folder: Path) -> Path:
    """A containers signature policy that accepts anything (for `push`), written in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "policy.json"
    path.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    return path


class DistributionRegistry:
    """A `docker-registry serve` child process with its config, storage and log in `folder`."""

    def __init__(self, folder: Path, users: dict[str, str] | None = None) -> None:
        self.folder = folder
        self.users = dict(users or {})
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = folder / "registry.log"
        self._started_once = False

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("the registry is not running")
        return self.process.pid

    @property
    def login(self) -> tuple[str, str] | None:
        """The first user's (name, password), or None for an open registry."""
        return next(iter(self.users.items()), None)

    def credentials(self) -> str | None:
        """The first user's `name:password` (skopeo's `--creds`), or None."""
        return None if self.login is None else f"{self.login[0]}:{self.login[1]}"

    # --- the process ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the registry and wait (at most START_SECONDS) until `/v2/` answers."""
        if self.process is not None:
            return
        config = self._write_config()
        failure = ""
        for _ in range(1 if self._started_once else START_ATTEMPTS):
            failure = self._start_once(config)
            if not failure:
                self._started_once = True
                return
            # Only a first start may move: once started, tests rely on the URL staying.
            self.port = free_port()
            config = self._write_config()
        raise RuntimeError(f"docker-registry did not start: {failure}")

    def _start_once(self, config: Path) -> str:
        """Run the registry on `self.port`; "" once it answers, else why it did not."""
        with self.log_path.open("ab") as log:
            process = subprocess.Popen(
                ["docker-registry", "serve", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return f"exited with {process.returncode}: {self._log_tail()}"
            try:
                if httpx.get(f"{self.url}/v2/", timeout=1).status_code in (200, 401):
                    self.process = process
                    return ""
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        _stop_process(process)
        return f"no answer in {START_SECONDS}s: {self._log_tail()}"

    def stop(self) -> None:
        """Stop the registry by its PID (SIGTERM, SIGKILL after STOP_SECONDS)."""
        if self.process is not None:
            _stop_process(self.process)
            self.process = None

    def __enter__(self) -> DistributionRegistry:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _write_config(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        lines = [
            "version: 0.1",
            "log:",
            "  level: info",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {self.folder / 'storage'}",
            "  delete:",
            "    enabled: true",
            "http:",
            f"  addr: {self.host}",
            # Fixed, so that upload state stays valid across a restart (random otherwise).
            "  secret: ecrd-test-distribution-secret",
        ]
        if self.users:
            htpasswd = self.folder / "htpasswd"
            entries = [
                subprocess.run(
                    ["htpasswd", "-Bbn", user, password],
                    check=True,
                    capture_output=True,
                    text=True,
                    timeout=COMMAND_SECONDS,
                ).stdout.strip()
                for user, password in self.users.items()
            ]
            htpasswd.write_text("\n".join(entries) + "\n")
            lines += ["auth:", "  htpasswd:", "    realm: upstream", f"    path: {htpasswd}"]
        config = self.folder / "config.yml"
        config.write_text("\n".join(lines) + "\n")
        return config

    def _log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-2000:]

    # --- filling it ----------------------------------------------------------------------

    def push(self, policy: Path, layout: Path, tag: str, repository: str, dest_tag: str) -> None:
        """Copy `oci:<layout>:<tag>` (and, for an index, every image it lists) to
        `<repository>:<dest_tag>` with skopeo, keeping its digests; `policy` is a signature
        policy (`skopeo_policy`). The host's registries.conf and logins are kept out."""
        isolation = self.folder / "skopeo"
        isolation.mkdir(exist_ok=True)
        (isolation / "registries.conf").write_text("unqualified-search-registries = []\n")
        (isolation / "auth.json").write_text('{"auths": {}}')
        environment = {
            **os.environ,
            "CONTAINERS_REGISTRIES_CONF": str(isolation / "registries.conf"),
            "REGISTRY_AUTH_FILE": str(isolation / "auth.json"),
        }
        arguments = ["skopeo", "--policy", str(policy), "copy", "--all", "--preserve-digests"]
        arguments += ["--dest-tls-verify=false"]
        if self.credentials() is not None:
            arguments += ["--dest-creds", str(self.credentials())]
        arguments += [f"oci:{layout}:{tag}", f"docker://{self.host}/{repository}:{dest_tag}"]
        result = subprocess.run(
            arguments,
            capture_output=True,
            text=True,
            timeout=COMMAND_SECONDS,
            env=environment,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"skopeo copy to {self.host} failed: {result.stderr[-2000:]}")

    def http(self) -> httpx.Client:
        """An httpx client of the registry, logged in as its first user (if any)."""
        return httpx.Client(base_url=self.url, auth=self.login, timeout=30)

    def push_blob(self, repository: str, data: bytes) -> str:
        """Upload `data` (POST, then PUT with the bytes: Distribution 2.8 has no one-request
        upload) and return its digest."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        with self.http() as client:
            started = client.post(f"/v2/{repository}/blobs/uploads/")
            assert started.status_code == 202, started.text
            location = httpx.URL(self.url).join(started.headers["Location"])
            # Merged into the Location's own query (its `_state`), which `params=` would drop.
            finished = client.put(
                location.copy_merge_params({"digest": digest}),
                content=data,
                headers={"Content-Type": "application/octet-stream"},
            )
            assert finished.status_code == 201, finished.text
        return digest

    def put_manifest(self, repository: str, reference: str, body: bytes, media_type: str) -> str:
        """PUT a manifest under a tag or its digest (its blobs pushed first); its digest."""
        with self.http() as client:
            response = client.put(
                f"/v2/{repository}/manifests/{reference}",
                content=body,
                headers={"Content-Type": media_type},
            )
        assert response.status_code == 201, response.text
        return str(response.headers["Docker-Content-Digest"])

    # --- what it saw ---------------------------------------------------------------------

    def requests_for(self, path_part: str, method: str = "GET") -> int:
        """How many `method` requests whose URI holds `path_part` the registry answered, by its
        log (all of them since the folder was first used)."""
        text = self.log_path.read_text(errors="replace")
        return sum(
            1
            for line in text.splitlines()
            if "response completed" in line
            and path_part in line
            and f"http.request.method={method}" in line
        )


def _stop_process(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_SECONDS)
