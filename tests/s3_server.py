"""An S3-protocol server process on a free loopback port, for tests and benchmarks.

It is moto's server (`python -m moto.server`, from the test dependencies), which keeps
buckets in memory and enforces S3's rules that matter to the blob store, such as the 5 MiB
smallest part of a multipart upload. It accepts any credentials; `environment()` gives the ones
to hand to a process that talks to it through AWS's standard credential chain.

    with S3Server() as s3:
        bucket = s3.create_bucket()
        store = S3BlobStore(bucket, endpoint_url=s3.endpoint_url)  # with environment() set

The process is stopped by its PID (SIGTERM, then SIGKILL) in `stop()`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3
import httpx
from botocore.config import Config

ACCESS_KEY_ID = "AKIAS3TESTSERVER0000"
SECRET_ACCESS_KEY = "s3TestServerSecretKey00000000000000000000"
REGION = "us-east-1"
START_TIMEOUT_SECONDS = 30
STOP_TIMEOUT_SECONDS = 10
# A port taken between probing and binding makes the child exit: try another, a few times.
START_ATTEMPTS = 3


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class S3Server:
    """moto's S3 server as a child process; `start()` returns once it answers HTTP."""

    def __init__(self, log_path: Path | None = None) -> None:
        """`log_path` keeps the server's request log; by default it goes to a temporary file
        that `stop()` removes (its tail is in the error when the server does not start)."""
        self._log_path = log_path
        self._own_log = log_path is None
        self._process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def endpoint_url(self) -> str:
        if self._process is None:
            raise RuntimeError("the S3 server is not running")
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("the S3 server is not running")
        return self._process.pid

    def start(self) -> None:
        if self._process is not None:
            return
        if self._log_path is None:
            handle, name = tempfile.mkstemp(prefix="moto-s3-", suffix=".log")
            os.close(handle)
            self._log_path = Path(name)
        failure = ""
        for _ in range(START_ATTEMPTS):
            failure = self._start_once(_free_port())
            if not failure:
                return
        self._remove_own_log()
        raise RuntimeError(f"the S3 server did not start: {failure}")

    def _start_once(self, port: int) -> str:
        """Start on `port`; return why it failed, or "" once it answers."""
        assert self._log_path is not None
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        environment = {
            key: value for key, value in os.environ.items() if not key.startswith("AWS_")
        }
        with open(self._log_path, "ab") as log:
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=environment
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return f"exited with {process.returncode}: {self._log_tail()}"
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            except httpx.TransportError:
                time.sleep(0.1)
                continue
            self._process = process
            self.port = port
            return ""
        _stop_process(process)
        return f"no answer in {START_TIMEOUT_SECONDS}s: {self._log_tail()}"

    def _log_tail(self) -> str:
        assert self._log_path is not None
        return self._log_path.read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        if self._process is not None:
            _stop_process(self._process)
            self._process = None
        self._remove_own_log()

    def _remove_own_log(self) -> None:
        if self._own_log and self._log_path is not None:
            self._log_path.unlink(missing_ok=True)
            self._log_path = None

    def __enter__(self) -> S3Server:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def environment(self) -> dict[str, str]:
        """AWS settings for a process whose S3 client finds its credentials in the environment
        (pass `endpoint_url` to it separately)."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": REGION,
        }

    def s3_client(self) -> Any:
        """A boto3 S3 client of this server, to set up or inspect buckets from a test."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a new unique name unless `name` is given); return its name."""
        bucket = name or f"test-{uuid.uuid4().hex[:16]}"
        self.s3_client().create_bucket(Bucket=bucket)
        return bucket

    def delete_bucket(self, name: str) -> None:
        """Empty a bucket (objects and unfinished multipart uploads) and delete it, which
        frees the server's memory."""
        client = self.s3_client()
        keys = [{"Key": key} for key in object_keys(client, name)]
        for start in range(0, len(keys), 1000):
            client.delete_objects(
                Bucket=name, Delete={"Objects": keys[start : start + 1000], "Quiet": True}
            )
        for upload in multipart_uploads(client, name):
            client.abort_multipart_upload(
                Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"]
            )
        client.delete_bucket(Bucket=name)


def object_keys(client: Any, bucket: str, prefix: str = "") -> list[str]:
    """Every object key under `prefix` in a bucket, through a boto3 S3 client."""
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [entry["Key"] for page in pages for entry in page.get("Contents", [])]


def multipart_uploads(client: Any, bucket: str, prefix: str = "") -> list[dict[str, Any]]:
    """The unfinished multipart uploads under `prefix` (their parts are stored bytes too)."""
    pages = client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=prefix)
    return [upload for page in pages for upload in page.get("Uploads", [])]


def _stop_process(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
