"""Registry tokens: what GetAuthorizationToken hands out for `docker login`.

A token is `<payload>.<signature>`, both base64url: the payload is JSON naming the
principal (account and user, none for the root), the region and the expiry; the signature
is HMAC-SHA256 under a key generated once per installation and kept in the data folder
(mode 0600), so every process sharing the folder accepts every other's tokens. Nothing about
a token is stored: the principal's permissions are read when the token is used, so a changed
policy applies at once and a user whose last key is deleted loses access.

The same key signs the download URLs GetDownloadUrlForLayer hands out, as S3 presigned URLs
are on AWS: a path, an expiry and an HMAC over both.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from ecrd.bounded_parsing import InputInvalid, parse_decimal, parse_json
from ecrd.metadata.records import utcnow

TOKEN_LIFETIME = timedelta(hours=12)
DOWNLOAD_URL_LIFETIME = timedelta(hours=1)
KEY_FILE = "token-signing.key"
EXPIRES_PARAMETER = "X-Ecrd-Expires"
SIGNATURE_PARAMETER = "X-Ecrd-Signature"
# A presigned URL's expiry, in seconds since the epoch, is at most this (the year 5138).
MAX_EXPIRY = 10**11


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


def load_signing_key(data_dir: Path) -> bytes:
    """The installation's token key, created (0600) on first use."""
    path = data_dir / KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            pass
        else:
            with os.fdopen(descriptor, "w") as key_file:
                key_file.write(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())


class TokenIssuer:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def issue(
        self,
        account_id: str,
        user_name: str | None,
        region: str,
        lifetime: timedelta = TOKEN_LIFETIME,
        user_id: int | None = None,
    ) -> tuple[str, datetime]:
        """A new token for the principal (account, user) and when it expires."""
        expires_at = utcnow() + lifetime
        claims = {
            "a": account_id,
            "u": user_name,
            "i": user_id,
            "r": region,
            "e": int(expires_at.timestamp()),
        }
        payload = json.dumps(claims, separators=(",", ":")).encode()
        return f"{_b64(payload)}.{_b64(self._sign(payload))}", expires_at

    def read(self, token: str) -> RegistryToken | None:
        """The token's claims if this installation signed it (expired or not); else None."""
        encoded_payload, _, encoded_signature = token.partition(".")
        try:
            payload = _unb64(encoded_payload)
            signature = _unb64(encoded_signature)
            claims = parse_json(payload)
        except ValueError:  # InputInvalid, or base64 that does not decode
            return None
        if not hmac.compare_digest(signature, self._sign(payload)):
            return None
        return RegistryToken(
            account_id=claims["a"],
            user_name=claims["u"],
            user_id=claims["i"],
            region=claims["r"],
            expires_at=datetime.fromtimestamp(claims["e"], tz=utcnow().tzinfo),
        )

    def presign(self, path: str) -> str:
        """The query string that lets anyone GET `path` until it expires."""
        expires = int((utcnow() + DOWNLOAD_URL_LIFETIME).timestamp())
        signature = _b64(self._sign(f"{path}\n{expires}".encode()))
        return f"{EXPIRES_PARAMETER}={expires}&{SIGNATURE_PARAMETER}={signature}"

    def presigned(self, path: str, expires: str | None, signature: str | None) -> bool:
        """Whether a presigned URL's parameters are this installation's and still valid."""
        if not expires or not signature:
            return False
        try:
            expires_at = parse_decimal(expires, MAX_EXPIRY)
        except InputInvalid:
            return False
        if expires_at <= utcnow().timestamp():
            return False
        expected = _b64(self._sign(f"{path}\n{expires}".encode()))
        # Compared as bytes: compare_digest raises TypeError for str with non-ASCII characters.
        return hmac.compare_digest(expected.encode(), signature.encode())

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()
