"""Sealing values at rest: authenticated encryption under keys the metadata store never holds.

Secret values (the Secrets Manager API) and the token and URL signing keys are stored sealed
with AES-256-GCM (the `cryptography` package). A sealed value is one line of ASCII:

    s1:<key id>:<base64url of nonce (12 bytes) + ciphertext + tag (16 bytes)>

The associated data is `s1:<key id>:<context>`, where the context names the row the value
belongs to (`secret:<arn>:<version id>`, `signing-key:<generation>`): a sealed value copied
into another row, or relabelled with another key id, fails authentication and does not open.
Nonces are random; a key seals far fewer than the 2^32 values a random 96-bit nonce allows.

The keyring is one or more keys, each `<id>:<base64 of 32 bytes>`. The first seals; every key
opens what names it, so a rotation is: put a new key first, re-seal what is stored (`ecrd
sealing reseal`), drop the old key. The keys come from the `sealing_keys` setting when it is
set (comma-separated: what several processes over one PostgreSQL store share through
`ECRD_SEALING_KEYS`), else from the key file (`sealing_key_file`, default `sealing.keys` in the
data folder: one key a line, `#` comments), which the first start makes with one new key,
readable by its owner only.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import os
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

if TYPE_CHECKING:
    from ecrd.settings import Settings

KEY_FILE_NAME = "sealing.keys"
KEY_BYTES = 32
NONCE_BYTES = 12
FORMAT = "s1"
KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,32}")
KEY_FORM = "<id>:<base64 of 32 bytes>, the id 1 to 32 of A-Z a-z 0-9 _ . -"
logger = logging.getLogger("ecrd.sealing")


class KeyringInvalid(ValueError):
    """The keys cannot be read or are malformed; the message is one line and holds no key."""


class Unsealable(Exception):
    """A sealed value that does not open: its key is not in the keyring, or it was altered
    (or moved to another row). `key_id` is the key it names, when it names one."""

    def __init__(self, message: str, key_id: str | None) -> None:
        super().__init__(message)
        self.message = message
        self.key_id = key_id


@dataclass(frozen=True)
class SealingKey:
    key_id: str
    secret: bytes = field(repr=False)

    def line(self) -> str:
        """The key as the setting and the key file write it."""
        return f"{self.key_id}:{base64.b64encode(self.secret).decode()}"


@dataclass(frozen=True)
class ResealReport:
    """What a re-seal did to a table's values."""

    resealed: int = 0
    # Already sealed with the first key.
    current: int = 0
    # Values that did not open, by the key id they name ("" for a value naming none).
    unopened: dict[str, int] = field(default_factory=dict)

    def __add__(self, other: ResealReport) -> ResealReport:
        unopened = dict(self.unopened)
        for key_id, count in other.unopened.items():
            unopened[key_id] = unopened.get(key_id, 0) + count
        return ResealReport(self.resealed + other.resealed, self.current + other.current, unopened)


def new_key() -> SealingKey:
    """A new random key, its id the day it was made and six random hex digits."""
    return SealingKey(f"{time.strftime('%Y%m%d')}-{secrets.token_hex(3)}", os.urandom(KEY_BYTES))


def key_id_of(sealed: str) -> str | None:
    """The id of the key a sealed value names; None for text that is not a sealed value."""
    form, _, rest = sealed.partition(":")
    key_id, separator, _ = rest.partition(":")
    if form != FORMAT or not separator or KEY_ID.fullmatch(key_id) is None:
        return None
    return key_id


class Keyring:
    """The keys: the first seals, each opens what it sealed."""

    def __init__(self, keys: Sequence[SealingKey]) -> None:
        if not keys:
            raise KeyringInvalid("the keyring has no key")
        self._keys = {key.key_id: AESGCM(key.secret) for key in keys}
        if len(self._keys) != len(keys):
            raise KeyringInvalid("two sealing keys have the same id")
        self.primary_id = keys[0].key_id
        self.key_ids = tuple(key.key_id for key in keys)

    def seal(self, plain: bytes, context: str) -> str:
        """`plain` sealed with the first key, bound to `context`."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._keys[self.primary_id].encrypt(
            nonce, plain, _associated(self.primary_id, context)
        )
        return f"{FORMAT}:{self.primary_id}:{_b64(nonce + sealed)}"

    def open(self, sealed: str, context: str) -> bytes:
        """The plain bytes of a value `seal` made for `context`; Unsealable if it does not
        open here."""
        key_id = key_id_of(sealed)
        if key_id is None:
            raise Unsealable("the stored value is not a sealed value", None)
        key = self._keys.get(key_id)
        if key is None:
            raise Unsealable(
                f"it was sealed with key '{key_id}', which the keyring does not have", key_id
            )
        try:
            raw = _unb64(sealed.split(":", 2)[2])
            return key.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _associated(key_id, context))
        except (InvalidTag, ValueError, binascii.Error):
            raise Unsealable(
                f"it does not open with key '{key_id}': the key is not the one that sealed it, "
                "or the stored value was altered",
                key_id,
            ) from None

    def is_current(self, sealed: str) -> bool:
        """Whether `sealed` is sealed with the first key (re-sealing would change nothing)."""
        return key_id_of(sealed) == self.primary_id

    def reseal(self, sealed: str, context: str) -> str:
        """`sealed` opened and sealed again with the first key."""
        return self.seal(self.open(sealed, context), context)


def parse_keys(text: str, source: str) -> list[SealingKey]:
    """Keys written one a line (a key file, `#` comments and blank lines allowed) or
    comma-separated (the setting). KeyringInvalid names `source` and the entry, never a key."""
    keys = []
    lines = [line for line in text.splitlines() if not line.strip().startswith("#")]
    entries = [part.strip() for line in lines for part in line.split(",")]
    for number, entry in enumerate(entries, start=1):
        if not entry or entry.startswith("#"):
            continue
        key_id, separator, encoded = entry.partition(":")
        try:
            secret = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            secret = b""
        if not separator or KEY_ID.fullmatch(key_id.strip()) is None or len(secret) != KEY_BYTES:
            raise KeyringInvalid(f"{source}: entry {number} is not a key ({KEY_FORM})")
        keys.append(SealingKey(key_id.strip(), secret))
    if not keys:
        raise KeyringInvalid(f"{source}: no key in it ({KEY_FORM})")
    if len({key.key_id for key in keys}) != len(keys):
        raise KeyringInvalid(f"{source}: two keys have the same id")
    return keys


def key_file_of(settings: Settings) -> Path:
    return settings.sealing_key_file or settings.data_dir / KEY_FILE_NAME


def load_keyring(settings: Settings, create: bool = True) -> Keyring:
    """The keyring the settings name: `sealing_keys` when set, else the key file, made with one
    new key when it is missing and `create` (its folder must exist). KeyringInvalid otherwise."""
    configured = settings.sealing_keys.get_secret_value()
    if configured.strip():
        return Keyring(parse_keys(configured, "setting 'sealing_keys'"))
    path = key_file_of(settings)
    if not path.exists() and create:
        _create_key_file(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise KeyringInvalid(
            f"no sealing key: sealing_keys is empty and there is no key file {path} (the "
            "server makes it at its first start)"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise KeyringInvalid(f"cannot read the sealing key file {path}: {error}") from None
    if os.name == "posix" and path.stat().st_mode & 0o077:
        logger.warning("the sealing key file %s can be read by others than its owner", path)
    return Keyring(parse_keys(text, f"sealing key file {path}"))


def _create_key_file(path: Path) -> None:
    """Write a key file with one new key, readable by its owner only. The file appears whole
    or not at all (written aside, then linked into place), and when another process made it
    first, theirs is kept."""
    if not path.parent.is_dir():
        raise KeyringInvalid(f"cannot make the sealing key file {path}: no folder {path.parent}")
    key = new_key()
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    text = (
        "# ecrd sealing keys: the first seals, every one opens what it sealed (docs/secrets.md).\n"
        f"{key.line()}\n"
    )
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        # When another process made it first, every process uses that one.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    except OSError as error:
        raise KeyringInvalid(f"cannot make the sealing key file {path}: {error}") from None
    finally:
        temporary.unlink(missing_ok=True)
    logger.info("made the sealing key file %s with key %s", path, key.key_id)


def _associated(key_id: str, context: str) -> bytes:
    return f"{FORMAT}:{key_id}:{context}".encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
