"""Users and access keys: who may sign API calls, and the identity policies they carry."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, exists, select, update

from ecrd.auth.principals import Principal, root_arn, user_arn
from ecrd.metadata.database import Database
from ecrd.metadata.records import as_utc, utcnow
from ecrd.metadata.schema import access_keys, iam_users
from ecrd.metadata.statements import BOOTSTRAP_LOCK, insert_ignoring_conflicts, serialise


@dataclass(frozen=True)
class AccessKey:
    access_key_id: str
    account_id: str
    # None for the account's root key.
    user_name: str | None
    created_at: datetime


@dataclass(frozen=True)
class KeyOwner:
    """What verifying a signature needs: the secret, and who signs with it."""

    secret_access_key: str
    principal: Principal


_KEY_ROWS = select(
    access_keys.c.access_key_id,
    access_keys.c.account_id,
    access_keys.c.secret_access_key,
    access_keys.c.created_at,
    iam_users.c.id.label("user_id"),
    iam_users.c.name.label("user_name"),
    iam_users.c.policies_json,
).select_from(access_keys.outerjoin(iam_users, access_keys.c.user_id == iam_users.c.id))


def _principal(
    account_id: str, user_name: str | None, user_id: int | None, policies_json: str | None
) -> Principal:
    if user_name is None:
        return Principal(account_id=account_id, arn=root_arn(account_id))
    return Principal(
        account_id=account_id,
        arn=user_arn(account_id, user_name),
        user_name=user_name,
        identity_policies=tuple(json.loads(policies_json or "[]")),
        user_id=user_id,
    )


class IdentityStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def create_key(
        self,
        access_key_id: str,
        secret_access_key: str,
        account_id: str,
        user_name: str | None,
        policies: list[str] | None,
    ) -> AccessKey:
        """Store a key for the account's root (`user_name` None) or for a user, creating the
        user on first use; `policies`, when given, replace the user's identity policies."""
        now = utcnow()

        def work(connection: Connection) -> None:
            user_id = None
            if user_name is not None:
                user_id = self._ensure_user(connection, account_id, user_name, policies, now)
            connection.execute(
                access_keys.insert().values(
                    access_key_id=access_key_id,
                    secret_access_key=secret_access_key,
                    account_id=account_id,
                    user_id=user_id,
                    created_at=now,
                )
            )

        await self._database.write(work)
        return AccessKey(access_key_id, account_id, user_name, now)

    @staticmethod
    def _ensure_user(
        connection: Connection,
        account_id: str,
        name: str,
        policies: list[str] | None,
        now: datetime,
    ) -> int:
        query = select(iam_users.c.id).where(
            (iam_users.c.account_id == account_id) & (iam_users.c.name == name)
        )
        user_id = connection.execute(query).scalar()
        if user_id is None:
            connection.execute(
                iam_users.insert().values(
                    account_id=account_id,
                    name=name,
                    policies_json=json.dumps(policies or []),
                    created_at=now,
                )
            )
            return int(connection.execute(query).scalar_one())
        if policies is not None:
            connection.execute(
                update(iam_users)
                .where(iam_users.c.id == user_id)
                .values(policies_json=json.dumps(policies))
            )
        return int(user_id)

    async def owner_of(self, access_key_id: str) -> KeyOwner | None:
        """The secret and principal of a key; None for a key that does not exist."""
        query = _KEY_ROWS.where(access_keys.c.access_key_id == access_key_id)
        row = await self._database.read(lambda connection: connection.execute(query).first())
        if row is None:
            return None
        return KeyOwner(
            row.secret_access_key,
            _principal(row.account_id, row.user_name, row.user_id, row.policies_json),
        )

    async def principal(
        self, account_id: str, user_name: str | None, user_id: int | None = None
    ) -> Principal | None:
        """The principal as it stands now (policies included); None for a removed user, or
        when `user_id` is given and the name now belongs to another user."""
        if user_name is None:
            return _principal(account_id, None, None, None)
        query = select(iam_users.c.id, iam_users.c.policies_json).where(
            (iam_users.c.account_id == account_id) & (iam_users.c.name == user_name)
        )
        row = await self._database.read(lambda connection: connection.execute(query).first())
        if row is None or (user_id is not None and row.id != user_id):
            return None
        return _principal(account_id, user_name, row.id, row.policies_json)

    async def keys(self) -> list[AccessKey]:
        query = _KEY_ROWS.order_by(
            access_keys.c.account_id, iam_users.c.name, access_keys.c.created_at
        )
        rows = await self._database.read(lambda connection: connection.execute(query).all())
        return [_access_key(row) for row in rows]

    async def delete_key(self, access_key_id: str) -> bool:
        """Remove a key; a user left with no key is removed too. False if there was none."""

        def work(connection: Connection) -> bool:
            user_id = connection.execute(
                select(access_keys.c.user_id).where(access_keys.c.access_key_id == access_key_id)
            ).first()
            if user_id is None:
                return False
            connection.execute(
                delete(access_keys).where(access_keys.c.access_key_id == access_key_id)
            )
            if user_id[0] is not None:
                still_used = connection.execute(
                    select(exists().where(access_keys.c.user_id == user_id[0]))
                ).scalar()
                if not still_used:
                    connection.execute(delete(iam_users).where(iam_users.c.id == user_id[0]))
            return True

        return await self._database.write(work)

    async def create_root_key_if_none(
        self, access_key_id: str, secret_access_key: str, account_id: str
    ) -> bool:
        """Store the account's root key if the store has no key at all; False when it has.
        Processes starting at once on one empty store make one key between them."""

        def work(connection: Connection) -> bool:
            serialise(connection, BOOTSTRAP_LOCK)
            if connection.execute(_ANY_KEY).scalar():
                return False
            connection.execute(
                access_keys.insert().values(
                    **_root_key(access_key_id, secret_access_key, account_id)
                )
            )
            return True

        return await self._database.write(work)

    async def ensure_root_key(
        self, access_key_id: str, secret_access_key: str, account_id: str
    ) -> str:
        """Store a root key under `access_key_id` unless one is there; return the secret the
        store holds for that id (another process may have stored it first)."""
        insert = insert_ignoring_conflicts(
            self._database.dialect,
            access_keys,
            **_root_key(access_key_id, secret_access_key, account_id),
        )
        stored = select(access_keys.c.secret_access_key).where(
            access_keys.c.access_key_id == access_key_id
        )

        def work(connection: Connection) -> str:
            connection.execute(insert)
            return str(connection.execute(stored).scalar_one())

        return await self._database.write(work)

    async def any_key(self) -> bool:
        return bool(
            await self._database.read(lambda connection: connection.execute(_ANY_KEY).scalar())
        )


_ANY_KEY = select(exists().where(access_keys.c.access_key_id.is_not(None)))


def _root_key(access_key_id: str, secret_access_key: str, account_id: str) -> dict[str, Any]:
    """The access_keys row of an account's root key, made now."""
    return {
        "access_key_id": access_key_id,
        "secret_access_key": secret_access_key,
        "account_id": account_id,
        "user_id": None,
        "created_at": utcnow(),
    }


def _access_key(row: Any) -> AccessKey:
    return AccessKey(row.access_key_id, row.account_id, row.user_name, as_utc(row.created_at))
