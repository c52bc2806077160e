"""Writers in several processes at once over one store: what one SQLite writer used to hide.

Each "process" is a Database object of its own (its own engine and connections), so the
database sees separate sessions whose transactions overlap; run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from datetime import timedelta

import pytest

from ecrd.auth.tokens import TokenIssuer
from ecrd.errors import TagImmutable
from ecrd.metadata.database import Database
from ecrd.metadata.identities import IdentityStore
from ecrd.metadata.manifests import ManifestStore
from ecrd.metadata.signing_keys import SigningKeyStore
from tests.metadata.conftest import open_database
from tests.metadata.test_stores import make_repository, manifest

ROUNDS = 10


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


WRITERS = 4


def with_databases(database_url: tuple[str, str | None], count: int, scenario: object) -> None:
    async def main() -> None:
        databases = [open_database(database_url) for _ in range(count)]
        try:
            await databases[0].migrate()
            await scenario(databases)  # type: ignore[operator]
        finally:
            for database in databases:
                await database.close()

    asyncio.run(main())


def test_only_one_of_concurrent_pushes_of_an_immutable_tag_succeeds(
    database_url: tuple[str, str | None],
) -> None:
    async def scenario(databases: list[Database]) -> None:
        repository = await make_repository(databases[0])
        stores = [ManifestStore(database) for database in databases]
        for round_number in range(ROUNDS):
            tag = f"v{round_number}"
            # given four writers each pushing a different manifest under the same new
            # immutable tag at the same moment
            digests = [f"sha256:{round_number:02d}{writer:02d}" + "0" * 60 for writer in range(4)]
            outcomes = await asyncio.gather(
                *(
                    store.put(repository.id, manifest(digest), tag, immutable_tags={tag})
                    for store, digest in zip(stores, digests, strict=True)
                ),
                return_exceptions=True,
            )
            # then exactly one succeeds, the others are refused as immutable
            succeeded = [outcome for outcome in outcomes if not isinstance(outcome, Exception)]
            refused = [outcome for outcome in outcomes if isinstance(outcome, TagImmutable)]
            assert (len(succeeded), len(refused)) == (1, WRITERS - 1), outcomes
            # and the tag names the winner's manifest
            found = await stores[1].find_for_pull(
                repository.registry_id, repository.name, tag, None
            )
            assert found is not None and found[1] is not None
            assert found[1].digest == succeeded[0].manifest.digest  # type: ignore[union-attr]

    with_databases(database_url, WRITERS, scenario)


def test_concurrent_pushes_of_one_manifest_under_an_immutable_tag_all_succeed(
    database_url: tuple[str, str | None],
) -> None:
    async def scenario(databases: list[Database]) -> None:
        repository = await make_repository(databases[0])
        digest = "sha256:" + "e" * 64
        # given writers pushing the same manifest under one immutable tag at once
        outcomes = await asyncio.gather(
            *(
                ManifestStore(database).put(
                    repository.id, manifest(digest), "v1", immutable_tags={"v1"}
                )
                for database in databases
            ),
            return_exceptions=True,
        )
        # then none is refused: the tag does not move
        assert not [outcome for outcome in outcomes if isinstance(outcome, Exception)]

    with_databases(database_url, WRITERS, scenario)


def test_concurrent_pushes_naming_the_same_tags_in_other_orders_all_succeed(
    database_url: tuple[str, str | None],
) -> None:
    async def scenario(databases: list[Database]) -> None:
        repository = await make_repository(databases[0])
        tags = ["latest", "v1", "stable"]
        for round_number in range(ROUNDS):
            # given writers each pushing its own manifest under the same tags, in other orders
            # (as `PUT .../manifests/<digest>?tag=...` with the tags in any order)
            outcomes = await asyncio.gather(
                *(
                    ManifestStore(database).put(
                        repository.id,
                        manifest(f"sha256:{round_number:02d}{writer:02d}" + "1" * 60),
                        tags[writer % 3 :] + tags[: writer % 3],
                    )
                    for writer, database in enumerate(databases)
                ),
                return_exceptions=True,
            )
            # then none fails (no deadlock between them), and the tags move together
            assert not [outcome for outcome in outcomes if isinstance(outcome, Exception)]

    with_databases(database_url, WRITERS, scenario)


def test_processes_starting_at_once_make_one_root_key(
    database_url: tuple[str, str | None],
) -> None:
    async def scenario(databases: list[Database]) -> None:
        for round_number in range(3):
            # given an empty store (keys of the previous round deleted)
            for key in await IdentityStore(databases[0]).keys():
                await IdentityStore(databases[0]).delete_key(key.access_key_id)
            # when every process bootstraps at once
            made = await asyncio.gather(
                *(
                    IdentityStore(database).create_root_key_if_none(
                        f"AKIATEST{round_number}{index:011d}", "s" * 40, "000000000000"
                    )
                    for index, database in enumerate(databases)
                )
            )
            # then exactly one made a key, and the store holds that one
            assert made.count(True) == 1
            assert len(await IdentityStore(databases[0]).keys()) == 1

    with_databases(database_url, WRITERS, scenario)


def test_processes_starting_at_once_make_one_signing_key(
    database_url: tuple[str, str | None],
) -> None:
    async def scenario(databases: list[Database]) -> None:
        # when every process starts its issuer at once on an empty store
        issuers = [TokenIssuer(SigningKeyStore(database)) for database in databases]
        await asyncio.gather(*(issuer.start() for issuer in issuers))
        # then there is one key, and a token from any process verifies in every other
        assert len(await SigningKeyStore(databases[0]).keys()) == 1
        for issuer in issuers:
            token, _ = await issuer.issue("000000000000", None, "us-east-1")
            for other in issuers:
                claims = await other.read(token)
                assert claims is not None and claims.account_id == "000000000000"

    with_databases(database_url, WRITERS, scenario)


def test_a_rotated_key_signs_new_tokens_and_old_ones_verify_until_it_expires(
    database_url: tuple[str, str | None],
) -> None:
    async def scenario(databases: list[Database]) -> None:
        first, second = (TokenIssuer(SigningKeyStore(database)) for database in databases)
        await first.start()
        await second.start()
        old_token, _ = await first.issue("000000000000", "alice", "us-east-1")
        old_url = await first.presign("/v2/app/blobs/sha256:" + "a" * 64)

        # a key younger than the rotation age is not replaced
        assert await second.rotate(older_than=timedelta(days=30)) is None
        # when process two rotates (the key counts as old enough)
        assert await second.rotate(older_than=timedelta(0)) == 2
        # then two signs with generation 2, and process one verifies it (it reads the keys
        # again for a generation it does not know)
        new_token, _ = await second.issue("000000000000", "alice", "us-east-1")
        assert new_token != old_token
        assert await first.read(new_token) is not None
        # and the old token and URL still verify in both: the replaced key verifies on
        for issuer in (first, second):
            assert await issuer.read(old_token) is not None
            expires, signature = (part.partition("=")[2] for part in old_url.split("&"))
            assert await issuer.presigned("/v2/app/blobs/sha256:" + "a" * 64, expires, signature)

        # when keys 2 and 3 are replaced with no time to verify (a later rotation deletes
        # what expired)
        keys = SigningKeyStore(databases[0])
        assert await keys.rotate(timedelta(0), verify_for=timedelta(seconds=-1)) == 3
        assert await keys.rotate(timedelta(0), verify_for=timedelta(seconds=-1)) == 4
        # then key 1 (still in its time) and the newest are left; a token of deleted key 2
        # is refused, one of key 1 still verifies
        assert [key.generation for key in await keys.keys()] == [1, 4]
        fresh = TokenIssuer(SigningKeyStore(databases[1]))
        await fresh.start()
        assert await fresh.read(new_token) is None
        assert await fresh.read(old_token) is not None

    with_databases(database_url, 2, scenario)


def test_a_process_two_rotations_behind_verifies_the_newest_key(
    database_url: tuple[str, str | None],
) -> None:
    async def scenario(databases: list[Database]) -> None:
        behind, rotating = (TokenIssuer(SigningKeyStore(database)) for database in databases)
        await behind.start()
        await rotating.start()
        # when another process rotates twice and signs with generation 3
        assert await rotating.rotate(older_than=timedelta(0)) == 2
        assert await rotating.rotate(older_than=timedelta(0)) == 3
        token, _ = await rotating.issue("000000000000", None, "us-east-1")
        # then the process that knows only generation 1 reads the keys again and accepts it
        assert await behind.read(token) is not None
        # and many tokens of an unknown newer generation at once share the reads
        forged = json.dumps({"a": "0", "u": None, "i": None, "r": "x", "e": 1, "k": 99})
        started = asyncio.get_running_loop().time()
        results = await asyncio.gather(
            *(behind.read(f"{_b64(forged.encode())}.AAAA") for _ in range(50))
        )
        assert results == [None] * 50
        assert asyncio.get_running_loop().time() - started < 5

    with_databases(database_url, 2, scenario)


def test_the_key_file_of_an_older_installation_becomes_generation_one(
    database_url: tuple[str, str | None],
) -> None:
    async def scenario(databases: list[Database]) -> None:
        legacy = bytes(range(32))
        # given a token the older installation signed (no generation in it)
        payload = json.dumps(
            {"a": "000000000000", "u": None, "i": None, "r": "us-east-1", "e": 4_000_000_000}
        ).encode()
        signature = hmac.new(legacy, payload, hashlib.sha256).digest()
        token = f"{_b64(payload)}.{_b64(signature)}"
        # when the store's first key is made from the key file
        issuer = TokenIssuer(SigningKeyStore(databases[0]))
        await issuer.start(legacy_secret=legacy)
        # then the token still verifies
        assert await issuer.read(token) is not None
        # and a later start with another file changes nothing
        await TokenIssuer(SigningKeyStore(databases[0])).start(legacy_secret=b"\x00" * 32)
        assert await issuer.read(token) is not None

    with_databases(database_url, 1, scenario)


@pytest.mark.parametrize("forged", ["x", "eyJrIjoxfQ.AAAA", "eyJrIjp0cnVlfQ.AAAA"])
def test_forged_tokens_are_refused(database_url: tuple[str, str | None], forged: str) -> None:
    async def scenario(databases: list[Database]) -> None:
        issuer = TokenIssuer(SigningKeyStore(databases[0]))
        await issuer.start()
        assert await issuer.read(forged) is None

    with_databases(database_url, 1, scenario)
