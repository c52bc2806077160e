"""Users and access keys in the metadata layer, and the migrations against the schema, on
SQLite and PostgreSQL."""

from __future__ import annotations

import json

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from ecrd.metadata.database import Database
from ecrd.metadata.identities import IdentityStore
from ecrd.metadata.schema import metadata
from tests.metadata.test_stores import run

ALLOW_DESCRIBE = json.dumps(
    {"Statement": [{"Effect": "Allow", "Action": "ecr:Describe*", "Resource": "*"}]}
)
ALLOW_ALL = json.dumps({"Statement": [{"Effect": "Allow", "Action": "ecr:*", "Resource": "*"}]})


def test_migrations_build_exactly_the_schema(database_url: tuple[str, str | None]) -> None:
    async def scenario(database: Database) -> None:
        # Given a store migrated to the newest revision, then it matches schema.py exactly
        def differences(connection: Connection) -> list[object]:
            context = MigrationContext.configure(connection)
            return list(compare_metadata(context, metadata))

        assert await database.read(differences) == []

    run(database_url, scenario)


def test_root_and_user_keys_name_their_principals(database_url: tuple[str, str | None]) -> None:
    async def scenario(database: Database) -> None:
        store = IdentityStore(database)
        # Given an empty store, then it has no key
        assert not await store.any_key()
        # When a root key and a user key with a policy are stored
        await store.create_key("AKIAROOT000000000000", "root-secret", "111111111111", None, None)
        await store.create_key(
            "AKIAUSER000000000000", "user-secret", "111111111111", "ci", [ALLOW_DESCRIBE]
        )
        # Then each key gives its secret and principal, as AWS names them
        root = await store.owner_of("AKIAROOT000000000000")
        assert root is not None
        assert root.secret_access_key == "root-secret"
        assert root.principal.arn == "arn:aws:iam::111111111111:root"
        assert root.principal.is_root
        user = await store.owner_of("AKIAUSER000000000000")
        assert user is not None
        assert user.principal.arn == "arn:aws:iam::111111111111:user/ci"
        assert user.principal.user_name == "ci"
        assert user.principal.identity_policies == (ALLOW_DESCRIBE,)
        assert not user.principal.is_root
        assert await store.owner_of("AKIANOPE000000000000") is None
        assert await store.any_key()

    run(database_url, scenario)


def test_a_second_key_keeps_or_replaces_the_users_policies(
    database_url: tuple[str, str | None],
) -> None:
    async def scenario(database: Database) -> None:
        store = IdentityStore(database)
        await store.create_key("AKIAONE0000000000000", "s1", "111111111111", "ci", [ALLOW_DESCRIBE])
        # When a second key is made without policies, then the user keeps its policy
        await store.create_key("AKIATWO0000000000000", "s2", "111111111111", "ci", None)
        principal = await store.principal("111111111111", "ci")
        assert principal is not None
        assert principal.identity_policies == (ALLOW_DESCRIBE,)
        # When a third comes with policies, then they replace the user's
        await store.create_key("AKIATHREE00000000000", "s3", "111111111111", "ci", [ALLOW_ALL])
        principal = await store.principal("111111111111", "ci")
        assert principal is not None
        assert principal.identity_policies == (ALLOW_ALL,)
        # and the same name in another account is another user
        assert await store.principal("222222222222", "ci") is None

    run(database_url, scenario)


def test_deleting_a_users_last_key_removes_the_user(database_url: tuple[str, str | None]) -> None:
    async def scenario(database: Database) -> None:
        store = IdentityStore(database)
        await store.create_key("AKIAONE0000000000000", "s1", "111111111111", "ci", [ALLOW_ALL])
        await store.create_key("AKIATWO0000000000000", "s2", "111111111111", "ci", None)
        await store.create_key("AKIAROOT000000000000", "s3", "111111111111", None, None)
        listed = [(key.access_key_id, key.user_name) for key in await store.keys()]
        assert sorted(listed, key=lambda pair: pair[0]) == [
            ("AKIAONE0000000000000", "ci"),
            ("AKIAROOT000000000000", None),
            ("AKIATWO0000000000000", "ci"),
        ]
        # When one of two keys goes, then the user stays
        assert await store.delete_key("AKIAONE0000000000000")
        assert await store.principal("111111111111", "ci") is not None
        # When the last goes, then the user is gone (its tokens stop working)
        assert await store.delete_key("AKIATWO0000000000000")
        assert await store.principal("111111111111", "ci") is None
        # and deleting a key that is not there says so
        assert not await store.delete_key("AKIATWO0000000000000")
        # while the root, which needs no row, is always a principal
        root = await store.principal("111111111111", None)
        assert root is not None
        assert root.arn == "arn:aws:iam::111111111111:root"

    run(database_url, scenario)
