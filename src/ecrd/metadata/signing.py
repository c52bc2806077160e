"""Managed signing: the profiles' keys (sealed), each registry's signing rules, and per image
and profile one row that is both the work queued for the signing job and the status
DescribeImageSigningStatus shows.

A push that a rule covers queues its image in the push's own transaction (`queue_signing`);
an image is signed once per profile (a later push of it, a new tag say, queues nothing more
unless the last attempt FAILED). Referrers (signatures themselves among them) are not signed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ecrd.auth.principals import Principal
from ecrd.metadata.database import Database
from ecrd.metadata.records import as_utc, utcnow, wildcard_matches
from ecrd.metadata.registry_documents import RegistryDocumentStore, document_of_repository
from ecrd.metadata.schema import (
    image_signatures,
    registries,
    signing_configurations,
    signing_profiles,
)
from ecrd.sealing import Keyring, ResealReport, Unsealable, key_id_of

IN_PROGRESS = "IN_PROGRESS"
COMPLETE = "COMPLETE"
FAILED = "FAILED"


def profiles_for(configuration: dict[str, Any], name: str) -> list[str]:
    """The signing profiles whose rules cover repository `name`, in rule order, each once (a
    rule without filters covers every repository; `*` in a filter matches any characters)."""
    found: list[str] = []
    for rule in configuration.get("rules") or ():
        filters = rule.get("repositoryFilters") or ()
        if filters and not any(wildcard_matches(item["filter"], name) for item in filters):
            continue
        if rule["signingProfileArn"] not in found:
            found.append(rule["signingProfileArn"])
    return found


def queue_signing(
    connection: Connection, repository_id: int, digest: str, pusher: Principal | None
) -> bool:
    """Queue the image for signing with every profile the registry's rules give its
    repository, in the caller's transaction; True when anything was queued. The pusher is
    kept: the signing job signs with that identity's permission."""
    row = document_of_repository(connection, repository_id, signing_configurations)
    if row is None:
        return False
    registry_id, name, configuration = row
    profiles = profiles_for(configuration, name)
    module = postgresql if connection.dialect.name == "postgresql" else sqlite
    now = utcnow()
    queued = False
    who = {
        "pusher_account_id": pusher.account_id if pusher else None,
        "pusher_user_name": pusher.user_name if pusher else None,
        "pusher_user_id": pusher.user_id if pusher else None,
    }
    for arn in sorted(profiles):  # one lock order for every writer, as for replication
        statement = module.insert(image_signatures).values(
            registry_id=registry_id,
            repository_name=name,
            digest=digest,
            profile_arn=arn,
            status=IN_PROGRESS,
            attempts=0,
            queued_at=now,
            not_before=now,
            updated_at=now,
            **who,
        )
        # Signed once: only a FAILED attempt is queued again by a later push.
        again = statement.on_conflict_do_update(
            index_elements=["registry_id", "repository_name", "digest", "profile_arn"],
            set_={
                "status": IN_PROGRESS,
                "failure_code": None,
                "failure_reason": None,
                "attempts": 0,
                "queued_at": now,
                "not_before": now,
                "updated_at": now,
                **who,
            },
            where=image_signatures.c.status == FAILED,
        )
        queued = bool(connection.execute(again).rowcount) or queued
    return queued


@dataclass(frozen=True)
class SigningProfile:
    arn: str
    key_type: str
    private_key: bytes  # PKCS#8 DER, opened
    certificate_pem: str
    created_at: datetime


@dataclass(frozen=True)
class ProfileSummary:
    arn: str
    key_type: str
    certificate_pem: str
    created_at: datetime


@dataclass(frozen=True)
class ImageSignature:
    id: int
    registry_id: int
    account_id: str
    region: str
    repository_name: str
    digest: str
    profile_arn: str
    status: str
    failure_code: str | None
    failure_reason: str | None
    attempts: int
    # Who pushed the image (None: ecrd itself stored it).
    pusher_account_id: str | None = None
    pusher_user_name: str | None = None
    pusher_user_id: int | None = None


def _context(arn: str) -> str:
    return f"signing-profile:{arn}"


class SigningProfileStore:
    def __init__(self, database: Database, keyring: Keyring) -> None:
        self._database = database
        self._keyring = keyring

    async def create(
        self, arn: str, key_type: str, private_key: bytes, certificate_pem: str
    ) -> bool:
        """Store a new profile; False when the ARN has one already (nothing changes)."""
        sealed = self._keyring.seal(private_key, _context(arn))

        def work(connection: Connection) -> bool:
            if connection.execute(
                select(signing_profiles.c.arn).where(signing_profiles.c.arn == arn)
            ).first():
                return False
            connection.execute(
                insert(signing_profiles).values(
                    arn=arn,
                    key_type=key_type,
                    private_key_sealed=sealed,
                    certificate_pem=certificate_pem,
                    created_at=utcnow(),
                )
            )
            return True

        return await self._database.write(work)

    async def get(self, arn: str) -> SigningProfile | None:
        """The profile with its private key opened (Unsealable when the keyring lacks the
        key that sealed it)."""
        query = select(signing_profiles).where(signing_profiles.c.arn == arn)
        row = await self._database.read(lambda connection: connection.execute(query).first())
        if row is None:
            return None
        return SigningProfile(
            arn=row.arn,
            key_type=row.key_type,
            private_key=self._keyring.open(row.private_key_sealed, _context(row.arn)),
            certificate_pem=row.certificate_pem,
            created_at=as_utc(row.created_at),
        )

    async def summaries(self) -> list[ProfileSummary]:
        query = select(
            signing_profiles.c.arn,
            signing_profiles.c.key_type,
            signing_profiles.c.certificate_pem,
            signing_profiles.c.created_at,
        ).order_by(signing_profiles.c.arn)
        rows = await self._database.read(lambda connection: list(connection.execute(query)))
        return [ProfileSummary(r[0], r[1], r[2], as_utc(r[3])) for r in rows]

    async def delete(self, arn: str) -> bool:
        statement = delete(signing_profiles).where(signing_profiles.c.arn == arn)
        return await self._database.write(
            lambda connection: bool(connection.execute(statement).rowcount)
        )

    async def key_ids_in_use(self) -> dict[str, int]:
        """How many profiles each sealing key id seals."""
        query = select(signing_profiles.c.private_key_sealed)
        rows = await self._database.read(lambda connection: list(connection.execute(query)))
        counts: dict[str, int] = {}
        for (sealed,) in rows:
            key_id = key_id_of(sealed) or ""
            counts[key_id] = counts.get(key_id, 0) + 1
        return counts

    async def reseal(self) -> ResealReport:
        """Seal every profile's key with the keyring's first key; keys that do not open are
        left as they are and counted."""
        keyring = self._keyring

        def work(connection: Connection) -> ResealReport:
            resealed = current = 0
            unopened: dict[str, int] = {}
            for row in list(connection.execute(select(signing_profiles))):
                if keyring.is_current(row.private_key_sealed):
                    current += 1
                    continue
                try:
                    fresh = keyring.reseal(row.private_key_sealed, _context(row.arn))
                except Unsealable:  # a missing key, or an altered value
                    key_id = key_id_of(row.private_key_sealed) or ""
                    unopened[key_id] = unopened.get(key_id, 0) + 1
                    continue
                connection.execute(
                    update(signing_profiles)
                    .where(signing_profiles.c.arn == row.arn)
                    .values(private_key_sealed=fresh)
                )
                resealed += 1
            return ResealReport(resealed, current, unopened)

        return await self._database.write(work)


class SigningStore:
    """Signing configurations and image signatures."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._configurations = RegistryDocumentStore(database, signing_configurations)

    async def configuration(self, registry_id: int) -> dict[str, Any] | None:
        return await self._configurations.get(registry_id)

    async def set_configuration(self, registry_id: int, configuration: dict[str, Any]) -> None:
        await self._configurations.put(registry_id, configuration)

    async def delete_configuration(self, registry_id: int) -> dict[str, Any] | None:
        """Remove the configuration; the one removed, or None when there was none."""
        return await self._configurations.remove(registry_id)

    async def due(self, now: datetime, limit: int) -> list[ImageSignature]:
        query = (
            select(*_COLUMNS)
            .select_from(_WITH_REGISTRY)
            .where(
                (image_signatures.c.status == IN_PROGRESS) & (image_signatures.c.not_before <= now)
            )
            .order_by(image_signatures.c.queued_at, image_signatures.c.id)
            .limit(limit)
        )
        return await self._database.read(
            lambda connection: [ImageSignature(*row) for row in connection.execute(query)]
        )

    async def of_image(
        self, registry_id: int, repository_name: str, digest: str
    ) -> list[ImageSignature]:
        query = (
            select(*_COLUMNS)
            .select_from(_WITH_REGISTRY)
            .where(
                (image_signatures.c.registry_id == registry_id)
                & (image_signatures.c.repository_name == repository_name)
                & (image_signatures.c.digest == digest)
            )
            .order_by(image_signatures.c.profile_arn)
        )
        return await self._database.read(
            lambda connection: [ImageSignature(*row) for row in connection.execute(query)]
        )

    async def finish(
        self, signature: ImageSignature, status: str, code: str | None, reason: str | None
    ) -> None:
        await self._update(
            signature, status=status, failure_code=code, failure_reason=reason and reason[:500]
        )

    async def retry(self, signature: ImageSignature, at: datetime, code: str) -> None:
        await self._update(
            signature, attempts=signature.attempts + 1, not_before=at, failure_code=code
        )

    async def drop(self, signature: ImageSignature) -> None:
        statement = delete(image_signatures).where(image_signatures.c.id == signature.id)
        await self._database.write(lambda connection: connection.execute(statement))

    async def _update(self, signature: ImageSignature, **values: Any) -> None:
        statement = (
            update(image_signatures)
            .where(
                (image_signatures.c.id == signature.id) & (image_signatures.c.status == IN_PROGRESS)
            )
            .values(updated_at=utcnow(), **values)
        )
        await self._database.write(lambda connection: connection.execute(statement))


_COLUMNS = (
    image_signatures.c.id,
    image_signatures.c.registry_id,
    registries.c.account_id,
    registries.c.region,
    image_signatures.c.repository_name,
    image_signatures.c.digest,
    image_signatures.c.profile_arn,
    image_signatures.c.status,
    image_signatures.c.failure_code,
    image_signatures.c.failure_reason,
    image_signatures.c.attempts,
    image_signatures.c.pusher_account_id,
    image_signatures.c.pusher_user_name,
    image_signatures.c.pusher_user_id,
)
_WITH_REGISTRY = image_signatures.join(
    registries, registries.c.id == image_signatures.c.registry_id
)


def forget_repository_signatures(connection: Connection, registry_id: int, name: str) -> None:
    """Drop a deleted repository's signing rows, in its transaction."""
    connection.execute(
        delete(image_signatures).where(
            (image_signatures.c.registry_id == registry_id)
            & (image_signatures.c.repository_name == name)
        )
    )
