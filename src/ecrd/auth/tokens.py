"""Registry tokens: what GetAuthorizationToken hands out for `docker login`.

A token is `<payload>.<signature>`, both base64url: the payload is JSON naming the
principal (account and user, none for the root), the region, the expiry and the generation of
the key that signed it; the signature is HMAC-SHA256 under that key. The keys live in the
metadata store (`metadata/signing_keys.py`), so every process sharing the store accepts every
other's tokens; each process keeps them in memory, reading them again once a minute (to sign
with a key another process rotated in) and when a token names a generation it does not know
(at most once a second, so forged generations cannot turn verification into queries).

Nothing about a token is stored: the principal's permissions are read when the token is used,
so a changed policy applies at once and a user whose last key is deleted loses access.

The same keys sign the download URLs GetDownloadUrlForLayer hands out when the blob store has
no presigned URLs of its own: a path, an expiry and an HMAC over both.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from ecrd.bounded_parsing import InputInvalid, parse_decimal, parse_json
from ecrd.metadata.records import utcnow
from ecrd.metadata.signing_keys import SigningKey, SigningKeyStore

TOKEN_LIFETIME = timedelta(hours=12)
DOWNLOAD_URL_LIFETIME = timedelta(hours=1)
# The key file of installations from before keys lived in the metadata store.
LEGACY_KEY_FILE = "token-signing.key"
# A replaced key verifies this much longer: past the longest token it signed, with room for a
# process that signed with it until it next read the keys.
KEY_VERIFY_AFTER_REPLACED = TOKEN_LIFETIME + timedelta(hours=1)
KEYS_REFRESH_SECONDS = 60.0
UNKNOWN_KEY_REFRESH_SECONDS = 1.0
EXPIRES_PARAMETER = "X-Ecrd-Expires"
SIGNATURE_PARAMETER = "X-Ecrd-Signature"
# A presigned URL's expiry, in seconds since the epoch, is at most this (the year 5138).
MAX_EXPIRY = 10**11
# Verified tokens remembered (each well under 1 KiB); all are forgotten when there are more.
MAX_VERIFIED_TOKENS = 10_000
logger = logging.getLogger("ecrd.auth")


@dataclass(frozen=True)
class RegistryToken:
    account_id: str
    # None: the account's root.
    user_name: str | None
    user_id: int | None
    region: str
    expires_at: datetime

    @property
    def expired(self) -> bool:
        return self.expires_at <= utcnow()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def legacy_signing_secret(data_dir: Path) -> bytes | None:
    """The key an installation kept in its data folder before keys lived in the store."""
    path = data_dir / LEGACY_KEY_FILE
    try:
        return bytes.fromhex(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


class TokenIssuer:
    """Issues and verifies tokens and download URLs with the store's keys (or, without a
    store, with the keys given: for tools and tests that sign as a server does)."""

    def __init__(
        self, store: SigningKeyStore | None = None, keys: Sequence[SigningKey] = ()
    ) -> None:
        self._store = store
        self._keys = {key.generation: key for key in keys}
        self._loaded_at = time.monotonic() if keys else float("-inf")
        self._refreshing = asyncio.Lock()
        # Tokens whose signature was checked, with their claims and key generation: a client
        # sends one token with every request, and decoding and checking it (base64, JSON,
        # HMAC) was most of what authenticating a request cost. Keyed by the whole token, so
        # only the very bytes that verified hit; the key is still asked about every time.
        self._verified: dict[str, tuple[RegistryToken, int]] = {}

    @classmethod
    def with_secret(cls, secret: bytes, generation: int = 1) -> TokenIssuer:
        return cls(keys=[SigningKey(generation, secret, utcnow(), None)])

    async def start(self, legacy_secret: bytes | None = None) -> None:
        """Make the first key if the store has none (the legacy key when there is one), seal
        keys stored before sealing, and read the keys. When none of them opens with this
        process's keyring, a new key is rotated in, so the server can sign at all."""
        if self._store is not None:
            await self._store.ensure_first(legacy_secret)
            await self._store.seal_plain()
            await self._refresh()
            if not self._keys:
                logger.warning(
                    "no stored signing key opens with the sealing keys: a new one signs from "
                    "now on, and what the old ones signed is refused here"
                )
                await self._store.rotate(timedelta(0), KEY_VERIFY_AFTER_REPLACED)
                await self._refresh(time.monotonic())

    async def rotate(self, older_than: timedelta) -> int | None:
        """Put a new signing key in when the newest is older than `older_than` (the scheduled
        rotation); the generation made, or None when none was due."""
        if self._store is None:
            return None
        generation = await self._store.rotate(older_than, KEY_VERIFY_AFTER_REPLACED)
        await self._refresh()
        return generation

    async def _refresh(self, asked_at: float | None = None, least_gap: float = 0.0) -> None:
        """Read the keys again, unless they were read since `asked_at` (another caller did),
        and no sooner than `least_gap` seconds after the last read (waiting, not refusing).
        One read at a time, so a slow read can never replace a newer one."""
        if self._store is None:
            return
        asked_at = time.monotonic() if asked_at is None else asked_at
        async with self._refreshing:
            if self._loaded_at >= asked_at:
                return
            wait = self._loaded_at + least_gap - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            started = time.monotonic()
            self._keys = {key.generation: key for key in await self._store.keys()}
            self._loaded_at = started

    async def _fresh_keys(self) -> dict[int, SigningKey]:
        """The keys, read again when the last read is over a minute old (a rotation's expiry
        of the old key, a newer key, a key deleted by hand)."""
        if time.monotonic() - self._loaded_at > KEYS_REFRESH_SECONDS:
            await self._refresh()
        return self._keys

    async def _signing_key(self) -> SigningKey:
        keys = await self._fresh_keys()
        if not keys:
            raise RuntimeError("no signing key: TokenIssuer.start() was not awaited")
        return keys[max(keys)]

    async def _verifying_key(self, generation: int) -> SigningKey | None:
        keys = await self._fresh_keys()
        key = keys.get(generation)
        # A newer generation may be a key another process just rotated in: read the keys
        # again, at most once a second however many such tokens come, every caller waiting
        # for the read (an older unknown one is a deleted key, or a forgery).
        if key is None and self._store is not None and generation > max(keys, default=0):
            await self._refresh(time.monotonic(), UNKNOWN_KEY_REFRESH_SECONDS)
            key = self._keys.get(generation)
        return key if key is not None and key.verifies_at(utcnow()) else None

    async def issue(
        self,
        account_id: str,
        user_name: str | None,
        region: str,
        lifetime: timedelta = TOKEN_LIFETIME,
        user_id: int | None = None,
    ) -> tuple[str, datetime]:
        """A new token for the principal (account, user) and when it expires."""
        key = await self._signing_key()
        expires_at = utcnow() + lifetime
        claims = {
            "a": account_id,
            "u": user_name,
            "i": user_id,
            "r": region,
            "e": int(expires_at.timestamp()),
            "k": key.generation,
        }
        payload = json.dumps(claims, separators=(",", ":")).encode()
        return f"{_b64(payload)}.{_b64(_sign(key, payload))}", expires_at

    async def read(self, token: str) -> RegistryToken | None:
        """The token's claims if this installation signed it (expired or not); else None."""
        known = self._verified.get(token)
        if known is not None:
            remembered, key_generation = known
            return remembered if await self._verifying_key(key_generation) is not None else None
        encoded_payload, _, encoded_signature = token.partition(".")
        try:
            payload = _unb64(encoded_payload)
            signature = _unb64(encoded_signature)
            claims = parse_json(payload)
        except ValueError:  # InputInvalid, or base64 that does not decode
            return None
        # Tokens from before keys had generations were signed by generation 1.
        generation = claims.get("k", 1) if isinstance(claims, dict) else None
        if not isinstance(generation, int) or isinstance(generation, bool):
            return None
        key = await self._verifying_key(generation)
        if key is None or not hmac.compare_digest(signature, _sign(key, payload)):
            return None
        verified = RegistryToken(
            account_id=claims["a"],
            user_name=claims["u"],
            user_id=claims["i"],
            region=claims["r"],
            expires_at=datetime.fromtimestamp(claims["e"], tz=utcnow().tzinfo),
        )
        if len(self._verified) >= MAX_VERIFIED_TOKENS:
            self._verified.clear()
        self._verified[token] = (verified, generation)
        return verified

    async def presign(self, path: str) -> str:
        """The query string that lets anyone GET `path` until it expires."""
        key = await self._signing_key()
        expires = int((utcnow() + DOWNLOAD_URL_LIFETIME).timestamp())
        signature = _b64(_sign(key, f"{path}\n{expires}".encode()))
        return f"{EXPIRES_PARAMETER}={expires}&{SIGNATURE_PARAMETER}={key.generation}.{signature}"

    async def presigned(self, path: str, expires: str | None, signature: str | None) -> bool:
        """Whether a presigned URL's parameters are this installation's and still valid."""
        if not expires or not signature:
            return False
        try:
            expires_at = parse_decimal(expires, MAX_EXPIRY)
        except InputInvalid:
            return False
        if expires_at <= utcnow().timestamp():
            return False
        # "<generation>.<signature>"; URLs from before generations carry the signature alone.
        generation_text, _, signed = signature.rpartition(".")
        try:
            generation = parse_decimal(generation_text, MAX_EXPIRY) if generation_text else 1
        except InputInvalid:
            return False
        key = await self._verifying_key(generation)
        if key is None:
            return False
        expected = _b64(_sign(key, f"{path}\n{expires}".encode()))
        # Compared as bytes: compare_digest raises TypeError for str with non-ASCII characters.
        return hmac.compare_digest(expected.encode(), signed.encode())


def _sign(key: SigningKey, payload: bytes) -> bytes:
    return hmac.new(key.secret, payload, hashlib.sha256).digest()
