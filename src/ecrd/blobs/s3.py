"""S3 blob store: blobs and uploads as objects of one bucket, under an optional key prefix.

Layout under the prefix; keys are built only in this module:

    blobs/<algorithm>/<first two hex digits>/<hex>      committed blobs, immutable
    uploads/<upload id>/chunk-<offset>-<random hex>    one object per append of an upload

S3 keeps no partial objects that could be appended to or read back: parts of an unfinished
multipart upload are invisible, and every part but the last must hold at least 5 MiB. So each
append (one `open_upload` ... `close`) becomes an object of its own, and the driver state the
upload row keeps lists those chunk objects in order, e.g.
`{"chunks":[{"key":"chunk-0-3f9a..","size":123}]}`. A chunk's name is new for every append, so
two processes racing to append at the same offset never overwrite each other's object; the
loser's object is garbage under the upload's prefix, which commit and abort delete whole. An
append below PART_SIZE is one PutObject; a longer one is a multipart upload of its chunk object,
whose next part fills while the previous one is sent (about two parts in memory). An append
reopened at an earlier offset drops the later chunks from the state (their objects stay garbage
until commit or abort), and one it falls inside is kept as its first bytes (`"cut":true`).

A verified upload becomes its blob at once, as S3 shows a new object whole or not at all: one
chunk is copied on the server (CopyObject); several are joined by a multipart upload of the
blob's key whose parts are server-side copies of chunk ranges of at least 5 MiB
(UploadPartCopy) and, for the small chunks between them, bytes read back into one buffer and
sent once it holds a part. A commit that fails midway aborts that multipart upload, so no
parts are left; the blob key is written by nothing but commit.

The library is botocore's synchronous client, run in worker threads like the filesystem
driver's disk work: botocore is already a runtime dependency (the API edge's models and SigV4)
and tested with our SigV4 code; aiobotocore pins botocore to a narrow range that fights the
boto3 and awscli that tests and users install; obstore/object_store has no UploadPartCopy.
Credentials come from AWS's standard chain (environment, shared files, instance roles).

Errors: a missing object is None (`stat`), UploadBytesMissing (uploads) or FileNotFoundError
(`read`, as the filesystem driver); S3's answers that there is no room (EntityTooLarge,
QuotaExceeded, HTTP 507) are StorageFull; anything else propagates as botocore raised it, an
operator-side failure the server answers with a 5xx.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
import secrets
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import botocore.config
import botocore.session
from anyio import CapacityLimiter, to_thread
from botocore.exceptions import ClientError

from ecrd.blobs.store import StoredBlob, UploadBytesMissing
from ecrd.digests import Digest
from ecrd.errors import StorageFull, UploadTooFragmented

READ_CHUNK = 1024 * 1024
# What an append buffers before it turns into a multipart upload, and the size of its parts.
PART_SIZE = 8 * 1024 * 1024
# S3 takes at most 10,000 parts: every this many parts, the parts grow by PART_SIZE, so that
# one object may hold 440 GiB (10,000 parts of 8 MiB would stop at 78 GiB).
PARTS_PER_SIZE = 1000
# S3's smallest part but the last.
MIN_PART_SIZE = 5 * 1024 * 1024
# S3's largest CopyObject source; a larger single chunk is copied part by part.
MAX_COPY_OBJECT = 5 * 1024**3
# The largest server-side copy one UploadPartCopy does (S3 allows 5 GiB; smaller parts retry
# cheaper).
MAX_COPY_PART = 1024**3
# The most keys one DeleteObjects takes.
DELETE_BATCH = 1000
DEFAULT_DOWNLOAD_URL_LIFETIME = timedelta(minutes=20)
# S3 joins at most 10,000 parts into one object, and a chunk of 5 MiB or more is one part at
# least: an upload takes no more appends than that.
MAX_CHUNKS = 10_000
# Threads (and pooled connections) for S3 calls of one store.
THREADS = 64
CONNECT_TIMEOUT_SECONDS = 5
READ_TIMEOUT_SECONDS = 60
CHECK_TIMEOUT_SECONDS = 2

logger = logging.getLogger("ecrd.blobs")
_UPLOAD_ID = re.compile(r"^[a-zA-Z0-9-]{1,64}$")
_BLOB_KEY = re.compile(r"^(?P<algorithm>[a-z0-9]{1,16})/[0-9a-f]{2}/(?P<hex>[0-9a-f]{32,128})$")
_CHUNK_NAME = re.compile(r"^chunk-[0-9]{1,20}-[0-9a-f]{1,64}$")
_CONTENT_TYPE = "application/octet-stream"
_MISSING = {"NoSuchKey", "NotFound", "404", "NoSuchUpload"}
_NO_ROOM = {"EntityTooLarge", "QuotaExceeded", "InsufficientStorage", "XMinioStorageFull"}
Result = TypeVar("Result")


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _is_missing(error: ClientError) -> bool:
    # A HEAD has no body, so its 404 comes with no more than the status as code.
    return _error_code(error) in _MISSING


@contextmanager
def _room_needed() -> Iterator[None]:
    """Turn S3's "no room" answers into StorageFull, naming the cause."""
    try:
        yield
    except ClientError as error:
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if _error_code(error) in _NO_ROOM or status == 507:
            message = error.response.get("Error", {}).get("Message", "")
            raise StorageFull(
                f"insufficient storage for blobs: S3 answered {_error_code(error)} {message}"
            ) from None
        raise


@dataclass(frozen=True)
class _Chunk:
    """The first `size` bytes of one append's object, named relative to its upload's prefix;
    `cut` when the object holds more (an append reopened inside it)."""

    name: str
    size: int
    cut: bool = False


def _load_state(driver_state: str) -> list[_Chunk]:
    """The chunks a driver state lists; "{}" (an empty upload's row) lists none. A state this
    driver did not write (a row edited or damaged by hand) is an upload that cannot go on."""
    try:
        state = json.loads(driver_state)
        entries = state.get("chunks", [])
        if not isinstance(entries, list):
            raise TypeError("chunks is not a list")
        chunks = []
        for entry in entries:
            name, size, cut = entry["key"], entry["size"], entry.get("cut", False)
            # The names become keys: only names this driver makes are taken.
            if not isinstance(name, str) or _CHUNK_NAME.fullmatch(name) is None:
                raise ValueError(f"invalid chunk name {name!r}")
            if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
                raise ValueError(f"invalid chunk size {size!r}")
            chunks.append(_Chunk(name, size, cut is True))
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise UploadBytesMissing(f"unreadable upload state: {error}") from None
    return chunks


def _dump_state(chunks: list[_Chunk]) -> str:
    entries: list[dict[str, Any]] = []
    for chunk in chunks:
        entry: dict[str, Any] = {"key": chunk.name, "size": chunk.size}
        if chunk.cut:
            entry["cut"] = True
        entries.append(entry)
    return json.dumps({"chunks": entries}, separators=(",", ":"))


def _part_size(part_number: int) -> int:
    """How much the buffered part `part_number` (from 1) of a multipart upload holds."""
    return PART_SIZE * (1 + (part_number - 1) // PARTS_PER_SIZE)


def _byte_range(start: int, end: int) -> str:
    """An HTTP Range value for bytes [start, end)."""
    return f"bytes={start}-{end - 1}"


class S3UploadWriter:
    """One append of an upload: buffered, then one PutObject or a multipart upload."""

    def __init__(
        self, store: S3BlobStore, upload_prefix: str, chunks: list[_Chunk], offset: int
    ) -> None:
        self._store = store
        self._chunks = chunks
        self._name = f"chunk-{offset}-{secrets.token_hex(8)}"
        self._key = upload_prefix + self._name
        self._pieces: list[bytes] = []
        self._buffered = 0
        self._size = 0
        self._multipart_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._parts_started = 0
        self._in_flight: asyncio.Future[None] | None = None
        self._failure: BaseException | None = None
        self._state: str | None = None

    async def write(self, data: bytes) -> None:
        if self._state is not None:
            raise RuntimeError("write after close")
        if self._failure is not None:
            raise self._failure
        if not data:
            return
        self._pieces.append(data)
        self._buffered += len(data)
        self._size += len(data)
        if self._buffered >= _part_size(self._parts_started + 1):
            try:
                await self._send_part()
            except BaseException as error:
                self._failure = error
                raise

    async def _send_part(self) -> None:
        """Start sending what is buffered as the next part, once the previous one is sent."""
        await self._wait_in_flight()
        part = b"".join(self._pieces)
        self._pieces.clear()
        self._buffered = 0
        if self._multipart_id is None:
            # Created here, not in the background: from now on abort_upload finds it.
            started = await self._store._call(
                self._store._client.create_multipart_upload,
                Bucket=self._store.bucket,
                Key=self._key,
                ContentType=_CONTENT_TYPE,
            )
            self._multipart_id = str(started["UploadId"])
        self._in_flight = asyncio.ensure_future(self._upload_part(part))

    def _upload_part(self, part: bytes) -> Coroutine[Any, Any, None]:
        """Send the next part (numbered now, in the order the parts are started)."""
        self._parts_started += 1
        return self._send(self._parts_started, part)

    async def _send(self, number: int, part: bytes) -> None:
        sent = await self._store._call(
            self._store._client.upload_part,
            Bucket=self._store.bucket,
            Key=self._key,
            UploadId=self._multipart_id,
            PartNumber=number,
            Body=part,
        )
        self._parts.append({"PartNumber": number, "ETag": sent["ETag"]})

    async def _wait_in_flight(self) -> None:
        if self._in_flight is not None:
            in_flight, self._in_flight = self._in_flight, None
            await in_flight

    async def close(self) -> str:
        if self._state is not None:
            return self._state
        try:
            if self._failure is not None:
                raise self._failure
            await self._finish()
        except BaseException as error:
            # The chunk's multipart upload aborted under it (S3 says NoSuchUpload; some
            # S3-compatible servers fail otherwise, so ask): the upload was cancelled, expired
            # or its repository deleted while this append ran.
            gone = isinstance(error, ClientError) and (
                _is_missing(error) or not await self._multipart_exists()
            )
            await self._abandon()
            if gone:
                raise UploadBytesMissing(self._key) from None
            raise
        chunks = self._chunks + [_Chunk(self._name, self._size)] if self._size else self._chunks
        self._state = _dump_state(chunks)
        return self._state

    async def _finish(self) -> None:
        store = self._store
        if self._multipart_id is None:
            if self._size:
                await store._call(
                    store._client.put_object,
                    Bucket=store.bucket,
                    Key=self._key,
                    Body=b"".join(self._pieces),
                    ContentType=_CONTENT_TYPE,
                )
                self._pieces.clear()
            return
        await self._wait_in_flight()
        if self._pieces:
            last = b"".join(self._pieces)
            self._pieces.clear()
            await self._upload_part(last)
        await store._call(
            store._client.complete_multipart_upload,
            Bucket=store.bucket,
            Key=self._key,
            UploadId=self._multipart_id,
            MultipartUpload={"Parts": self._parts},
        )

    async def _multipart_exists(self) -> bool:
        if self._multipart_id is None:
            return True
        try:
            await self._store._call(
                self._store._client.list_parts,
                Bucket=self._store.bucket,
                Key=self._key,
                UploadId=self._multipart_id,
                MaxParts=1,
            )
        except ClientError as error:
            return not _is_missing(error)
        return True

    async def _abandon(self) -> None:
        """After a failure: let a part in flight end, and drop the multipart upload (abort_upload
        drops it later if this cannot)."""
        self._pieces.clear()
        if self._in_flight is not None:
            in_flight, self._in_flight = self._in_flight, None
            await asyncio.wait([in_flight])
            if not in_flight.cancelled():
                in_flight.exception()  # retrieved: the failure that counts is the first one
        if self._multipart_id is not None:
            # Best effort: abort_upload finds whatever is left.
            await self._store._abort_multipart_quietly(self._key, self._multipart_id)


class S3BlobStore:
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        region: str = "us-east-1",
        endpoint_url: str | None = None,
        download_url_lifetime: timedelta = DEFAULT_DOWNLOAD_URL_LIFETIME,
    ) -> None:
        self.bucket = bucket
        # "a/b" and "a/b/" name the same folder.
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self._download_url_seconds = int(download_url_lifetime.total_seconds())
        session = botocore.session.get_session()
        config = botocore.config.Config(
            max_pool_connections=THREADS,
            retries={"mode": "standard"},
            # A call stuck on a dead endpoint must end: a thread cannot be cancelled.
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            read_timeout=READ_TIMEOUT_SECONDS,
            # An S3-compatible server at its own address seldom resolves bucket host names.
            s3={"addressing_style": "path"} if endpoint_url is not None else None,
            signature_version="s3v4",
        )
        self._client: Any = session.create_client(
            "s3", region_name=region, endpoint_url=endpoint_url, config=config
        )
        # Readiness and start-up ask once and quickly: no retries, short timeouts.
        self._check_client: Any = session.create_client(
            "s3",
            region_name=region,
            endpoint_url=endpoint_url,
            config=config.merge(
                botocore.config.Config(
                    connect_timeout=CHECK_TIMEOUT_SECONDS,
                    read_timeout=CHECK_TIMEOUT_SECONDS,
                    retries={"mode": "standard", "max_attempts": 1},
                )
            ),
        )
        # S3 calls wait in threads of their own, so that a slow bucket does not hold up the
        # threads that hash uploads and write to disk.
        self._threads = CapacityLimiter(THREADS)

    def close(self) -> None:
        """Release the clients' pooled connections."""
        self._client.close()
        self._check_client.close()

    async def _call(self, operation: Callable[..., Result], **arguments: Any) -> Result:
        """Run one S3 request in a worker thread; S3's "no room" is StorageFull."""
        with _room_needed():
            return await to_thread.run_sync(
                functools.partial(operation, **arguments), limiter=self._threads
            )

    async def _abort_multipart_quietly(self, key: str, upload_id: str) -> None:
        """Drop a multipart upload after a failure, which is the error that counts."""
        with contextlib.suppress(Exception):
            await self._call(
                self._client.abort_multipart_upload,
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
            )

    def _blob_key(self, digest: str) -> str:
        parsed = Digest.parse(digest)
        return f"{self.prefix}blobs/{parsed.algorithm}/{parsed.hex[:2]}/{parsed.hex}"

    def _upload_prefix(self, upload_id: str) -> str:
        if _UPLOAD_ID.fullmatch(upload_id) is None:
            raise ValueError(f"invalid upload id {upload_id!r}")
        return f"{self.prefix}uploads/{upload_id}/"

    async def check(self) -> None:
        # HeadBucket, not a HEAD of some key: a missing key and a missing bucket both answer
        # a bare 404 to HeadObject.
        await self._call(self._check_client.head_bucket, Bucket=self.bucket)

    async def stat(self, digest: str) -> int | None:
        try:
            head = await self._call(
                self._client.head_object, Bucket=self.bucket, Key=self._blob_key(digest)
            )
        except ClientError as error:
            if _is_missing(error):
                return None
            raise
        return int(head["ContentLength"])

    async def read(
        self, digest: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        key = self._blob_key(digest)
        try:
            async for piece in self._stream(key, start, end):
                yield piece
        except ClientError as error:
            if _is_missing(error):
                raise FileNotFoundError(f"blob {digest} is not stored") from None
            raise

    async def delete(self, digest: str) -> None:
        # S3 answers a delete of a missing key with success.
        await self._call(self._client.delete_object, Bucket=self.bucket, Key=self._blob_key(digest))

    async def delete_many(self, digests: Sequence[str]) -> list[str]:
        # DeleteObjects takes up to DELETE_BATCH keys a call, and answers each key's outcome.
        failed: list[str] = []
        by_key = {self._blob_key(digest): digest for digest in digests}
        keys = list(by_key)
        for first in range(0, len(keys), DELETE_BATCH):
            batch = [{"Key": key} for key in keys[first : first + DELETE_BATCH]]
            try:
                answer = await self._call(
                    self._client.delete_objects,
                    Bucket=self.bucket,
                    Delete={"Objects": batch, "Quiet": True},
                )
            except ClientError:
                logger.warning("S3 refused to delete %d blobs", len(batch), exc_info=True)
                failed += [by_key[entry["Key"]] for entry in batch]
                continue
            for error in answer.get("Errors", []):
                if error.get("Code") not in _MISSING and error.get("Key") in by_key:
                    logger.warning(
                        "S3 did not delete %s: %s %s",
                        error["Key"],
                        error.get("Code"),
                        error.get("Message"),
                    )
                    failed.append(by_key[error["Key"]])
        return failed

    async def download_url(self, digest: str) -> str | None:
        # No request to S3; a thread all the same, as fetching fresh credentials may block.
        url = await to_thread.run_sync(
            functools.partial(
                self._client.generate_presigned_url,
                "get_object",
                Params={"Bucket": self.bucket, "Key": self._blob_key(digest)},
                ExpiresIn=self._download_url_seconds,
            )
        )
        return str(url)

    async def start_upload(self, upload_id: str) -> str:
        # Nothing is written: an upload's objects appear with its first bytes.
        self._upload_prefix(upload_id)
        return _dump_state([])

    async def open_upload(self, upload_id: str, driver_state: str, offset: int) -> S3UploadWriter:
        upload_prefix = self._upload_prefix(upload_id)
        kept: list[_Chunk] = []
        held = 0
        for chunk in _load_state(driver_state):
            if held >= offset:
                break
            # Reopened inside this append: its bytes up to the offset stay.
            size = min(chunk.size, offset - held)
            kept.append(chunk if size == chunk.size else _Chunk(chunk.name, size, cut=True))
            held += size
        if held != offset:
            raise UploadBytesMissing(upload_id)  # the state holds less than the row says
        if len(kept) >= MAX_CHUNKS:
            raise UploadTooFragmented(
                f"the upload holds {len(kept)} chunks, the most an S3 blob store can join into "
                "one blob: finish it, or send the blob in larger chunks"
            )
        if kept:
            # One HEAD: an upload cancelled meanwhile is found before its body is taken.
            try:
                await self._call(
                    self._client.head_object, Bucket=self.bucket, Key=upload_prefix + kept[-1].name
                )
            except ClientError as error:
                if _is_missing(error):
                    raise UploadBytesMissing(upload_id) from None
                raise
        return S3UploadWriter(self, upload_prefix, kept, offset)

    async def read_upload(self, upload_id: str, driver_state: str) -> AsyncIterator[bytes]:
        upload_prefix = self._upload_prefix(upload_id)
        try:
            for chunk in _load_state(driver_state):
                async for piece in self._stream(upload_prefix + chunk.name, 0, chunk.size):
                    yield piece
        except ClientError as error:
            if _is_missing(error):
                raise UploadBytesMissing(upload_id) from None
            raise

    async def commit_upload(self, upload_id: str, driver_state: str, digest: str) -> None:
        upload_prefix = self._upload_prefix(upload_id)
        chunks = _load_state(driver_state)
        key = self._blob_key(digest)
        if await self.stat(digest) is None:
            try:
                await self._assemble(upload_prefix, chunks, key)
            except ClientError as error:
                if _is_missing(error):
                    raise UploadBytesMissing(upload_id) from None
                raise
        # else: same digest, same bytes: the stored copy stands. The chunks stay until
        # abort_upload, so that a second commit can put the blob back.

    async def _assemble(self, upload_prefix: str, chunks: list[_Chunk], key: str) -> None:
        """Write the chunks' bytes in order as object `key`, which appears whole at the end."""
        if not chunks:
            await self._call(
                self._client.put_object,
                Bucket=self.bucket,
                Key=key,
                Body=b"",
                ContentType=_CONTENT_TYPE,
            )
        elif len(chunks) == 1 and not chunks[0].cut and chunks[0].size <= MAX_COPY_OBJECT:
            await self._call(
                self._client.copy_object,
                Bucket=self.bucket,
                Key=key,
                CopySource={"Bucket": self.bucket, "Key": upload_prefix + chunks[0].name},
            )
        else:
            started = await self._call(
                self._client.create_multipart_upload,
                Bucket=self.bucket,
                Key=key,
                ContentType=_CONTENT_TYPE,
            )
            multipart = _Multipart(self, key, str(started["UploadId"]))
            try:
                await multipart.add_chunks(upload_prefix, chunks)
                await multipart.complete()
            except BaseException:
                await multipart.abort()
                raise

    async def abort_upload(self, upload_id: str, driver_state: str) -> None:
        await self._remove_upload(self._upload_prefix(upload_id))

    async def stored_uploads(self, written_before: datetime, limit: int) -> list[str]:
        # An upload's newest write is its chunk objects' newest LastModified, or the start of a
        # multipart upload still open under it.
        uploads_prefix = f"{self.prefix}uploads/"
        newest: dict[str, datetime] = {}

        def note(key: str, moment: datetime) -> None:
            upload_id = key.removeprefix(uploads_prefix).partition("/")[0]
            if _UPLOAD_ID.fullmatch(upload_id) is not None:
                newest[upload_id] = max(moment, newest.get(upload_id, moment))

        # Bounded: the keys of about `limit` uploads a sweep (each holds a few chunks).
        listing = {"MaxItems": limit * 4, "PageSize": DELETE_BATCH}
        objects = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=uploads_prefix, PaginationConfig=listing
        )
        for page in await self._pages(objects):
            for entry in page.get("Contents", []):
                note(entry["Key"], entry["LastModified"])
        multiparts = self._client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=uploads_prefix, PaginationConfig=listing
        )
        for page in await self._pages(multiparts):
            for multipart in page.get("Uploads", []):
                note(multipart["Key"], multipart["Initiated"])
        untouched = [name for name, moment in newest.items() if moment < written_before]
        return untouched[:limit]

    async def stored_blobs(self, after: str | None, limit: int) -> list[StoredBlob]:
        blobs_prefix = f"{self.prefix}blobs/"
        listing: dict[str, Any] = {
            "Bucket": self.bucket,
            "Prefix": blobs_prefix,
            "PaginationConfig": {"MaxItems": limit, "PageSize": min(limit, DELETE_BATCH)},
        }
        if after is not None:
            listing["StartAfter"] = self._blob_key(after)
        found = []
        pages = self._client.get_paginator("list_objects_v2").paginate(**listing)
        for page in await self._pages(pages):
            for entry in page.get("Contents", []):
                match = _BLOB_KEY.fullmatch(entry["Key"].removeprefix(blobs_prefix))
                if match is not None:
                    digest = f"{match.group('algorithm')}:{match.group('hex')}"
                    found.append(StoredBlob(digest, int(entry["Size"]), entry["LastModified"]))
        return found[:limit]

    async def abandoned_commits(self, written_before: datetime) -> int:
        # A blob made of several chunks is assembled as a multipart upload at its key; a
        # process killed meanwhile leaves that upload open (and billed) until aborted.
        pages = self._client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket,
            Prefix=f"{self.prefix}blobs/",
            PaginationConfig={"MaxItems": DELETE_BATCH},
        )
        aborted = 0
        for page in await self._pages(pages):
            for multipart in page.get("Uploads", []):
                if multipart["Initiated"] < written_before:
                    await self._abort_multipart_quietly(multipart["Key"], multipart["UploadId"])
                    aborted += 1
        return aborted

    async def _remove_upload(self, upload_prefix: str) -> None:
        """Delete every object and abort every multipart upload under an upload's prefix: what
        the state lists, and what racing or crashed appends left."""
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=upload_prefix, PaginationConfig={"PageSize": DELETE_BATCH}
        )
        for page in await self._pages(pages):
            keys = [{"Key": entry["Key"]} for entry in page.get("Contents", [])]
            if keys:
                answer = await self._call(
                    self._client.delete_objects,
                    Bucket=self.bucket,
                    Delete={"Objects": keys, "Quiet": True},
                )
                failed = [e for e in answer.get("Errors", []) if e.get("Code") not in _MISSING]
                if failed:
                    raise RuntimeError(
                        f"S3 did not delete {len(failed)} objects under {upload_prefix}: "
                        f"{failed[0].get('Code')} {failed[0].get('Message')}"
                    )
        pages = self._client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=upload_prefix
        )
        for page in await self._pages(pages):
            for multipart in page.get("Uploads", []):
                try:
                    await self._call(
                        self._client.abort_multipart_upload,
                        Bucket=self.bucket,
                        Key=multipart["Key"],
                        UploadId=multipart["UploadId"],
                    )
                except ClientError as error:
                    if not _is_missing(error):
                        raise

    async def _pages(self, pages: Any) -> list[dict[str, Any]]:
        """All pages of a listing, fetched in a worker thread."""
        with _room_needed():
            return await to_thread.run_sync(list, pages)

    async def _stream(self, key: str, start: int, end: int | None) -> AsyncIterator[bytes]:
        """Stream [start, end) of an object, reading the next piece while the caller sends this
        one; ClientError when it is missing."""
        if end is not None and end <= start:
            return
        arguments: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if start or end is not None:
            arguments["Range"] = f"bytes={start}-" if end is None else _byte_range(start, end)
        try:
            answer = await self._call(self._client.get_object, **arguments)
        except ClientError as error:
            if _error_code(error) == "InvalidRange":
                return  # starts at or past the end: no bytes, as a file read gives
            raise
        body = answer["Body"]
        pending: asyncio.Future[bytes] | None = None
        try:
            pending = asyncio.ensure_future(to_thread.run_sync(body.read, READ_CHUNK))
            while pending is not None:
                piece = await pending
                pending = None
                if not piece:
                    break
                pending = asyncio.ensure_future(to_thread.run_sync(body.read, READ_CHUNK))
                yield piece
        finally:
            if pending is not None:
                # The body must outlive a read still running in its thread.
                await asyncio.wait([pending])
                if not pending.cancelled():
                    pending.exception()
            await to_thread.run_sync(body.close)


class _Multipart:
    """The multipart upload that joins an upload's chunks into its blob's key.

    Ranges of at least MIN_PART_SIZE are copied on the server; smaller chunks, and the bytes
    that top a part up to its size, are read into one buffer and sent as a part once it is
    full, so every part but the last holds at least MIN_PART_SIZE."""

    def __init__(self, store: S3BlobStore, key: str, upload_id: str) -> None:
        self._store = store
        self._key = key
        self._upload_id = upload_id
        self._parts: list[dict[str, Any]] = []
        self._buffer: list[bytes] = []
        self._buffered = 0

    async def add_chunks(self, upload_prefix: str, chunks: list[_Chunk]) -> None:
        for chunk in chunks:
            source = upload_prefix + chunk.name
            position = 0
            while position < chunk.size:
                rest = chunk.size - position
                if not self._buffered and rest >= MIN_PART_SIZE:
                    await self._copy(source, position, chunk.size)
                    position = chunk.size
                else:
                    taken = min(_part_size(len(self._parts) + 1) - self._buffered, rest)
                    received = 0
                    async for piece in self._store._stream(source, position, position + taken):
                        self._buffer.append(piece)
                        received += len(piece)
                    if received != taken:  # the object is shorter than the state says
                        raise UploadBytesMissing(source)
                    self._buffered += taken
                    position += taken
                    if self._buffered >= _part_size(len(self._parts) + 1):
                        await self._send_buffer()

    async def _copy(self, source: str, start: int, end: int) -> None:
        """Copy [start, end) of `source` in equal parts of at most MAX_COPY_PART (each at
        least MIN_PART_SIZE, as the range is)."""
        count = -(-(end - start) // MAX_COPY_PART)
        step = -(-(end - start) // count)
        for part_start in range(start, end, step):
            copied = await self._store._call(
                self._store._client.upload_part_copy,
                Bucket=self._store.bucket,
                Key=self._key,
                UploadId=self._upload_id,
                PartNumber=len(self._parts) + 1,
                CopySource={"Bucket": self._store.bucket, "Key": source},
                CopySourceRange=_byte_range(part_start, min(part_start + step, end)),
            )
            etag = copied["CopyPartResult"]["ETag"]
            self._parts.append({"PartNumber": len(self._parts) + 1, "ETag": etag})

    async def _send_buffer(self) -> None:
        part = b"".join(self._buffer)
        self._buffer.clear()
        self._buffered = 0
        sent = await self._store._call(
            self._store._client.upload_part,
            Bucket=self._store.bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=len(self._parts) + 1,
            Body=part,
        )
        self._parts.append({"PartNumber": len(self._parts) + 1, "ETag": sent["ETag"]})

    async def complete(self) -> None:
        if self._buffered:
            await self._send_buffer()
        await self._store._call(
            self._store._client.complete_multipart_upload,
            Bucket=self._store.bucket,
            Key=self._key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": self._parts},
        )

    async def abort(self) -> None:
        self._buffer.clear()
        # The commit's own failure is the one to report.
        await self._store._abort_multipart_quietly(self._key, self._upload_id)
