"""Registry tokens: what GetAuthorizationToken hands out for `docker login`.

A token is `<payload>.<signature>`, both base64url: the payload is JSON naming the account,
region, principal and expiry; the signature is HMAC-SHA256 under a key generated once per
installation and kept in the data folder (mode 0600), so every process sharing the folder
accepts every other's tokens. Nothing about a token is stored.
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

from ecrd.metadata.records import utcnow

TOKEN_LIFETIME = timedelta(hours=12)
KEY_FILE = "token-signing.key"


@dataclass(frozen=True)
class RegistryToken:
    account_id: str
    region: str
    principal: str
    expires_at: datetime


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

    def issue(self, account_id: str, region: str, principal: str) -> tuple[str, datetime]:
        """A new token and when it expires."""
        expires_at = utcnow() + TOKEN_LIFETIME
        payload = json.dumps(
            {"a": account_id, "r": region, "p": principal, "e": int(expires_at.timestamp())},
            separators=(",", ":"),
        ).encode()
        return f"{_b64(payload)}.{_b64(self._sign(payload))}", expires_at

    def read(self, token: str) -> RegistryToken | None:
        """The token's claims if this installation signed it (expired or not); else None."""
        encoded_payload, _, encoded_signature = token.partition(".")
        try:
            payload = _unb64(encoded_payload)
            signature = _unb64(encoded_signature)
            claims = json.loads(payload)
        except ValueError:
            return None
        if not hmac.compare_digest(signature, self._sign(payload)):
            return None
        return RegistryToken(
            account_id=claims["a"],
            region=claims["r"],
            principal=claims["p"],
            expires_at=datetime.fromtimestamp(claims["e"], tz=utcnow().tzinfo),
        )

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()
