"""Token and URL signing keys, kept in the metadata store so that every process verifies what
any other issued.

Keys have generations 1, 2, ...: the newest signs, and every key not yet expired verifies. A
key gets its expiry when a newer one replaces it, far enough ahead that every token it signed
has expired by then; expired keys are deleted at the next rotation. Generations are given
explicitly, so two processes making the same next key conflict on the primary key and only one
key is made (at the first start as at a rotation).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, func, select, update

from ecrd.metadata.database import Database
from ecrd.metadata.records import as_utc, utcnow
from ecrd.metadata.schema import signing_keys
from ecrd.metadata.statements import insert_ignoring_conflicts

SECRET_BYTES = 32


@dataclass(frozen=True)
class SigningKey:
    generation: int
    secret: bytes
    created_at: datetime
    # None: the newest key, which signs. Else the end of its time to verify.
    expires_at: datetime | None

    def verifies_at(self, moment: datetime) -> bool:
        return self.expires_at is None or moment < self.expires_at


def _key(row: Any) -> SigningKey:
    return SigningKey(
        generation=row.generation,
        secret=bytes.fromhex(row.secret_hex),
        created_at=as_utc(row.created_at),
        expires_at=None if row.expires_at is None else as_utc(row.expires_at),
    )


class SigningKeyStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def keys(self) -> list[SigningKey]:
        """Every key that still verifies, oldest generation first."""
        now = utcnow()

        def work(connection: Connection) -> list[SigningKey]:
            rows = connection.execute(select(signing_keys).order_by(signing_keys.c.generation))
            return [key for key in map(_key, rows) if key.verifies_at(now)]

        return await self._database.read(work)

    async def ensure_first(self, secret: bytes | None = None) -> None:
        """Make generation 1 when the store has no key yet: `secret` when given (the key file
        of an installation from before keys lived here, so its tokens stay valid), else a new
        random one. Several processes starting at once make one key."""
        statement = insert_ignoring_conflicts(
            self._database.dialect,
            signing_keys,
            generation=1,
            secret_hex=(secret or secrets.token_bytes(SECRET_BYTES)).hex(),
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
                    secret_hex=secrets.token_hex(SECRET_BYTES),
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
