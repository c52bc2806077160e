"""SecretService in process, on both stores: what the pull-through cache calls
(`current_value`, `arn_of`), which reads with no caller to authorize, and how its errors read
through ECR's model (a rule's credential) and Secrets Manager's."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from ecrd.aws.errors import from_registry_error
from ecrd.aws.model import load_services
from ecrd.errors import SecretNotFound, SecretUndecryptable
from ecrd.metadata.database import Database
from ecrd.metadata.secrets import SecretStore, SecretValue
from ecrd.registry.secrets import SecretService
from ecrd.sealing import Keyring, new_key
from tests.metadata.conftest import database_url, open_database

__all__ = ["database_url"]
pytestmark = pytest.mark.metadata_independent  # both stores, in the SQLite pass
ACCOUNT, REGION = "000000000000", "us-east-1"
CREDENTIALS = '{"username": "octo", "accessToken": "ghp_token"}'


def run(
    database_url: tuple[str, str | None], scenario: Callable[[Database], Awaitable[None]]
) -> None:
    async def main() -> None:
        database = open_database(database_url)
        try:
            await database.migrate()
            await scenario(database)
        finally:
            await database.close()

    asyncio.run(main())


async def create(service: SecretService, name: str, value: SecretValue) -> str:
    written = await service.create(ACCOUNT, REGION, name, value, None, None, None, {})
    return written.record.arn


def test_current_value_reads_the_awscurrent_string_by_name_or_arn(
    database_url: tuple[str, str | None],
) -> None:
    async def scenario(database: Database) -> None:
        service = SecretService(SecretStore(database, Keyring([new_key()])))
        arn = await create(service, "ecr-pullthroughcache/hub", SecretValue(text=CREDENTIALS))
        for secret_id in ("ecr-pullthroughcache/hub", arn, arn[:-7]):
            assert await service.current_value(ACCOUNT, REGION, secret_id) == CREDENTIALS
            assert await service.arn_of(ACCOUNT, REGION, secret_id) == arn
        # a new value is current at once
        await service.put_value(ACCOUNT, REGION, arn, SecretValue(text="{}"), None, None)
        assert await service.current_value(ACCOUNT, REGION, arn) == "{}"

    run(database_url, scenario)


def test_current_value_finds_nothing_it_may_not_use(database_url: tuple[str, str | None]) -> None:
    async def scenario(database: Database) -> None:
        service = SecretService(SecretStore(database, Keyring([new_key()])))
        arn = await create(service, "cred", SecretValue(text=CREDENTIALS))
        binary = await create(service, "binary", SecretValue(binary=b"\x00"))
        await service.create(ACCOUNT, REGION, "empty", None, None, None, None, {})
        scheduled = await create(service, "scheduled", SecretValue(text=CREDENTIALS))
        await service.delete(ACCOUNT, REGION, scheduled, 7, False)
        refused = [
            (ACCOUNT, REGION, "missing"),
            (ACCOUNT, "eu-west-1", "cred"),  # another region
            ("111111111111", REGION, "cred"),  # another account
            ("111111111111", REGION, arn),  # another account's ARN
            (ACCOUNT, REGION, binary),  # no SecretString
            (ACCOUNT, REGION, "empty"),  # no current version
            (ACCOUNT, REGION, scheduled),  # scheduled for deletion
        ]
        for account, region, secret_id in refused:
            with pytest.raises(SecretNotFound):
                await service.current_value(account, region, secret_id)
        with pytest.raises(SecretNotFound):
            await service.arn_of(ACCOUNT, REGION, scheduled)

    run(database_url, scenario)


def test_current_value_of_a_value_the_keyring_cannot_open_is_undecryptable(
    database_url: tuple[str, str | None],
) -> None:
    async def scenario(database: Database) -> None:
        old, new = new_key(), new_key()
        writer = SecretService(SecretStore(database, Keyring([old])))
        await create(writer, "cred", SecretValue(text=CREDENTIALS))
        reader = SecretService(SecretStore(database, Keyring([new])))
        with pytest.raises(SecretUndecryptable) as raised:
            await reader.current_value(ACCOUNT, REGION, "cred")
        assert old.key_id in raised.value.message
        assert "ghp_token" not in raised.value.message
        # with both keys it opens again
        both = SecretService(SecretStore(database, Keyring([new, old])))
        assert await both.current_value(ACCOUNT, REGION, "cred") == CREDENTIALS

    run(database_url, scenario)


def test_secret_errors_take_each_services_names() -> None:
    services = load_services()
    ecr = services["AmazonEC2ContainerRegistry_V20150921"].model
    secrets = services["secretsmanager"].model
    rule = ecr.operation_model("CreatePullThroughCacheRule")
    read = secrets.operation_model("GetSecretValue")
    not_found = SecretNotFound("no such secret")
    assert from_registry_error(not_found, rule).code == "SecretNotFoundException"
    assert from_registry_error(not_found, read).code == "ResourceNotFoundException"
    undecryptable = SecretUndecryptable("the key is gone")
    assert from_registry_error(undecryptable, rule).code == "UnableToDecryptSecretValueException"
    assert from_registry_error(undecryptable, read).code == "DecryptionFailure"
    assert from_registry_error(undecryptable, read).status == 400
