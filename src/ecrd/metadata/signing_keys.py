"""Token and URL signing keys, kept in the metadata store so that every process verifies what
any other issued.

Keys have generations 1, 2, ...: the newest signs, and every key not yet expired verifies. A
key gets its expiry when a newer one replaces it, far enough ahead that every token it signed
has expired by then; expired keys are deleted at the next rotation. Generations are given
explicitly, so two processes making the same next key conflict on the primary key and only one
key is made (at the first start as at a rotation).

With a keyring, a key's 32 bytes are stored sealed (`secret_sealed`, bound to the generation);
rows from before keep their plain hex in `secret_hex` until `seal_plain` (at every start) or
`reseal` (`ecrd sealing reseal`) seals them. A key that does not open with the keyring is left
out of `keys()` (and logged): it can neither sign nor verify here. Without a keyring (tools and
tests that sign as a server does) keys are read and written as plain hex, as before sealing.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, func, select, update

from ecrd.metadata.database import Database
from ecrd.metadata.records import as_utc, utcnow
from ecrd.metadata.schema import signing_keys
from ecrd.metadata.statements import insert_ignoring_conflicts
from ecrd.sealing import Keyring, ResealReport, Unsealable, key_id_of

SECRET_BYTES = 32
logger = logging.getLogger("ecrd.sealing")


@dataclass(frozen=True)
class SigningKey:
    generation: int
    secret: bytes
    created_at: datetime
    # None: the newest key, which signs. Else the end of its time to verify.
    expires_at: datetime | None

    def verifies_at(self, moment: datetime) -> bool:
        return self.expires_at is None or moment < self.expires_at


def signing_key_context(generation: int) -> str:
    """What a signing key's sealed bytes are bound to."""
    return f"signing-key:{generation}"


class SigningKeyStore:
    def __init__(self, database: Database, keyring: Keyring | None = None) -> None:
        self._database = database
        self._keyring = keyring

    def _stored(self, generation: int, secret: bytes) -> dict[str, str | None]:
        """The columns that hold a key's bytes: sealed with a keyring, else plain hex."""
        if self._keyring is None:
            return {"secret_hex": secret.hex(), "secret_sealed": None}
        sealed = self._keyring.seal(secret, signing_key_context(generation))
        return {"secret_hex": None, "secret_sealed": sealed}

    def _key(self, row: Any) -> SigningKey | None:
        """The row's key; None when its sealed bytes do not open here."""
        if row.secret_sealed is None:
            secret = bytes.fromhex(row.secret_hex)
        elif self._keyring is None:
            return None
        else:
            try:
                secret = self._keyring.open(row.secret_sealed, signing_key_context(row.generation))
            except Unsealable as error:
                logger.warning(
                    "signing key generation %d does not open (%s): tokens and download URLs it "
                    "signs are refused here; every process needs the same sealing keys",
                    row.generation,
                    error.message,
                )
                return None
        return SigningKey(
            generation=row.generation,
            secret=secret,
            created_at=as_utc(row.created_at),
            expires_at=None if row.expires_at is None else as_utc(row.expires_at),
        )

    async def keys(self) -> list[SigningKey]:
        """Every key that still verifies and opens here, oldest generation first."""
        now = utcnow()

        def work(connection: Connection) -> list[Any]:
            query = select(signing_keys).order_by(signing_keys.c.generation)
            return [row for row in connection.execute(query) if _verifies(row, now)]

        rows = await self._database.read(work)
        return [key for key in map(self._key, rows) if key is not None]

    async def seal_plain(self) -> int:
        """Seal the keys stored as plain hex (rows from before sealing); how many."""
        keyring = self._keyring
        if keyring is None:
            return 0

        def work(connection: Connection) -> int:
            rows = list(
                connection.execute(
                    select(signing_keys.c.generation, signing_keys.c.secret_hex).where(
                        signing_keys.c.secret_hex.is_not(None)
                    )
                )
            )
            for row in rows:
                connection.execute(
                    update(signing_keys)
                    .where(signing_keys.c.generation == row.generation)
                    .values(**self._stored(row.generation, bytes.fromhex(row.secret_hex)))
                )
            return len(rows)

        return await self._database.write(work)

    async def reseal(self) -> ResealReport:
        """Seal every key with the keyring's first key: plain ones, and those another key
        sealed. Keys that do not open are left as they are and counted."""
        keyring = self._keyring
        if keyring is None:
            raise RuntimeError("re-sealing needs a keyring")

        def work(connection: Connection) -> ResealReport:
            resealed = current = 0
            unopened: dict[str, int] = {}
            for row in list(connection.execute(select(signing_keys))):
                key = self._key(row)
                if key is None:
                    key_id = key_id_of(row.secret_sealed) or ""
                    unopened[key_id] = unopened.get(key_id, 0) + 1
                    continue
                if row.secret_sealed is not None and keyring.is_current(row.secret_sealed):
                    current += 1
                    continue
                connection.execute(
                    update(signing_keys)
                    .where(signing_keys.c.generation == row.generation)
                    .values(**self._stored(row.generation, key.secret))
                )
                resealed += 1
            return ResealReport(resealed, current, unopened)

        return await self._database.write(work)

    async def key_ids_in_use(self) -> dict[str, int]:
        """How many keys each sealing key id seals ("plain" for those not sealed yet)."""
        rows = await self._database.read(
            lambda connection: list(connection.execute(select(signing_keys.c.secret_sealed)))
        )
        counts: dict[str, int] = {}
        for row in rows:
            key_id = "plain" if row.secret_sealed is None else key_id_of(row.secret_sealed) or ""
            counts[key_id] = counts.get(key_id, 0) + 1
        return counts

    async def ensure_first(self, secret: bytes | None = None) -> None:
        """Make generation 1 when the store has no key yet: `secret` when given (the key file
        of an installation from before keys lived here, so its tokens stay valid), else a new
        random one. Several processes starting at once make one key."""
        statement = insert_ignoring_conflicts(
            self._database.dialect,
            signing_keys,
            generation=1,
            **self._stored(1, secret or secrets.token_bytes(SECRET_BYTES)),
            created_at=utcnow(),
            expires_at=None,
        )

        def work(connection: Connection) -> None:
            if connection.execute(select(func.count()).select_from(signing_keys)).scalar_one():
                return
            connection.execute(statement)

        await self._database.write(work)

    async def rotate(self, older_than: timedelta, verify_for: timedelta) -> int | None:
        """Replace the signing key when the newest is older than `older_than`: the new key
        signs from now on, the ones it replaces verify for `verify_for` more, and keys past
        their expiry are deleted. Returns the new generation, or None when no rotation was
        due (or another process rotated at the same moment)."""
        now = utcnow()

        def work(connection: Connection) -> int | None:
            newest = connection.execute(
                select(signing_keys).order_by(signing_keys.c.generation.desc()).limit(1)
            ).first()
            if newest is not None and as_utc(newest.created_at) > now - older_than:
                return None
            generation = 1 if newest is None else newest.generation + 1
            inserted = connection.execute(
                insert_ignoring_conflicts(
                    self._database.dialect,
                    signing_keys,
                    generation=generation,
                    **self._stored(generation, secrets.token_bytes(SECRET_BYTES)),
                    created_at=now,
                    expires_at=None,
                ).returning(signing_keys.c.generation)
            ).first()
            if inserted is None:
                return None
            connection.execute(
                update(signing_keys)
                .where(
                    (signing_keys.c.generation < generation) & signing_keys.c.expires_at.is_(None)
                )
                .values(expires_at=now + verify_for)
            )
            connection.execute(delete(signing_keys).where(signing_keys.c.expires_at <= now))
            return generation

        return await self._database.write(work)


def _verifies(row: Any, moment: datetime) -> bool:
    return row.expires_at is None or moment < as_utc(row.expires_at)
