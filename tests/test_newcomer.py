"""The README as a newcomer uses it: a fresh clone, its first command, then every command it
shows, as written.

A green suite once hid a missing runtime dependency (the test extras brought it in), so this
test does what a newcomer does on a fresh machine: clone the repository into a temporary
folder (with this checkout's uncommitted changes laid over it, so a developer tests what they
are about to commit), run the README's first command there (`scripts/serve`, which makes a
fresh virtual environment holding only the runtime dependencies), and check that `/v2/` and a
SigV4-signed API call are answered. Then it runs the root-key lines the server printed and
every `sh` block of the README after "The two commands", in one bash session, in the clone,
changing only the port (`127.0.0.1:5000` becomes the test's free port) and `/tmp/` (a
temporary folder of the test's own). The server is stopped by its PID.
"""

from __future__ import annotations

import base64
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import httpx
import pytest
from botocore.config import Config

from tests.conftest import clean_environment, free_port

pytestmark = pytest.mark.metadata_independent

ROOT = Path(__file__).resolve().parent.parent
# A fresh virtual environment installs every runtime dependency from the package index.
SERVE_START_SECONDS = 600
README_SECONDS = 300
_KEY_LINES = re.compile(r"^\s+(aws configure set .*|export AWS_PROFILE=\S+)$", re.MULTILINE)
_SH_BLOCK = re.compile(r"^```sh\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def fresh_clone(target: Path) -> Path:
    """`git clone` of this repository, with the working tree's changes laid over it."""
    subprocess.run(
        ["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(target)],
        check=True,
        timeout=120,
        capture_output=True,
    )
    changed = subprocess.run(
        ["git", "ls-files", "--modified", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        check=True,
        timeout=60,
        capture_output=True,
    ).stdout.decode()
    for name in filter(None, changed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    deleted = subprocess.run(
        ["git", "ls-files", "--deleted", "-z"], cwd=ROOT, check=True, timeout=60,
        capture_output=True,
    ).stdout.decode()  # fmt: skip
    for name in filter(None, deleted.split("\0")):
        (target / name).unlink(missing_ok=True)
    return target


@dataclass
class Newcomer:
    clone: Path
    port: int
    home: Path
    scratch: Path
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def printed(self) -> str:
        return self.log_path.read_text(errors="replace")

    def environment(self) -> dict[str, str]:
        """A newcomer's shell: no ECRD_* or AWS_* settings, a home of their own, and the aws
        CLI on the PATH (here the test extras' one; a newcomer installs Debian's)."""
        environment = {
            key: value for key, value in clean_environment().items() if not key.startswith("AWS_")
        }
        environment["HOME"] = str(self.home)
        environment["PATH"] = f"{Path(sys.executable).parent}:{environment.get('PATH', '')}"
        environment["REGISTRY_AUTH_FILE"] = str(self.home / "containers-auth.json")
        environment["AWS_PAGER"] = ""
        return environment


@pytest.fixture(scope="module")
def newcomer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Newcomer]:
    folder = tmp_path_factory.mktemp("newcomer")
    clone = fresh_clone(folder / "ecrd")
    home = folder / "home"
    home.mkdir()
    scratch = folder / "tmp"
    scratch.mkdir()
    port = free_port()
    log_path = folder / "serve.log"
    environment = clean_environment()
    # The newcomer's own pip cache is theirs; the package index is the one this machine uses.
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            ["scripts/serve", "--port", str(port)],
            cwd=clone,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
        )
    reached = Newcomer(clone, port, home, scratch, log_path)
    try:
        deadline = time.monotonic() + SERVE_START_SECONDS
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(
                    f"scripts/serve exited {process.returncode}:\n{reached.printed()[-3000:]}"
                )
            try:
                httpx.get(f"{reached.url}/v2/", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.5)
        else:
            pytest.fail(f"scripts/serve did not answer in {SERVE_START_SECONDS} s")
        yield reached
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def printed_root_key(newcomer: Newcomer) -> tuple[str, str]:
    printed = newcomer.printed()
    key_id = re.search(r"aws_access_key_id (AKIA[A-Z0-9]{16})", printed)
    secret = re.search(r"aws_secret_access_key (\S+)", printed)
    assert key_id and secret, printed[-3000:]
    return key_id.group(1), secret.group(1)


def test_the_first_command_serves_v2_and_a_signed_api_call(newcomer: Newcomer) -> None:
    # given the server the README's first command started in a fresh clone
    venv = newcomer.clone / ".venv"
    installed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    # then its environment holds the runtime dependencies only (no test client)
    assert "boto3" not in installed and "pytest" not in installed, installed
    # and /v2/ answers (with ECR's login challenge: authentication is on)
    answer = httpx.get(f"{newcomer.url}/v2/", timeout=30)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Basic ")
    # and a SigV4-signed call with the root key it printed is answered
    key_id, secret = printed_root_key(newcomer)
    ecr = boto3.client(
        "ecr",
        endpoint_url=newcomer.url,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}),
    )
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    login = {"Authorization": "Basic " + token}
    assert base64.b64decode(token).startswith(b"AWS:")
    assert httpx.get(f"{newcomer.url}/v2/", headers=login, timeout=30).status_code == 200


def readme_blocks() -> list[str]:
    """The README's `sh` blocks after the first one (which is the two commands themselves)."""
    blocks = _SH_BLOCK.findall((ROOT / "README.md").read_text())
    assert len(blocks) > 1
    return blocks[1:]


def test_every_command_of_the_readme_works_as_written(newcomer: Newcomer) -> None:
    # given the root-key lines the server printed, run as the README says
    printed_lines = _KEY_LINES.findall(newcomer.printed())
    assert any("--profile ecrd" in line for line in printed_lines), newcomer.printed()[-3000:]
    assert "export AWS_PROFILE=ecrd" in printed_lines
    # when every command block of the README runs in the clone, one after the other
    script = "\n".join(
        ["set -euo pipefail", *printed_lines]
        + [
            f"echo '--- README block {number}'\n{block}"
            for number, block in enumerate(readme_blocks(), 1)
        ]
    )
    script = script.replace("127.0.0.1:5000", f"127.0.0.1:{newcomer.port}")
    script = script.replace("/tmp/", f"{newcomer.scratch}/")
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=newcomer.clone,
        env=newcomer.environment(),
        capture_output=True,
        text=True,
        timeout=README_SECONDS,
    )
    # then each of them succeeds, and what they show is what the README promises
    assert result.returncode == 0, f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    assert "byte-identical" in result.stdout
    assert '"repositoryName": "team/api"' in result.stdout
    assert re.search(r"the public registry's alias: [a-z][a-z0-9]+", result.stdout)
    assert "AccessKeyId" in result.stdout
    assert (newcomer.scratch / "pulled" / "index.json").is_file()
    # and the profile went where the README says, leaving the default one alone
    config = (newcomer.home / ".aws" / "config").read_text()
    assert "[profile ecrd]" in config and "[default]" not in config
