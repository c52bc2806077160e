"""Secrets Manager secrets: kept per account and region, with their tags and versions.

A version's value is stored sealed (`sealing.py`), bound to the secret's ARN and the version id,
so the metadata store never holds it in the clear and a sealed value copied to another row
does not open. Staging labels are rows of their own, one version per label and secret. A
secret scheduled for deletion keeps its rows (and its name) until `purge_at`; past it the
secret reads as gone, and the next write in the store deletes it (a bounded batch at a time).

Writes that depend on a secret's state lock its row first (FOR UPDATE on PostgreSQL; SQLite's
writers are one at a time) and answer a `Refusal` when it is gone or scheduled for deletion,
for the service to word.
"""

from __future__ import annotations

import dataclasses
import enum
import hmac
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    delete,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
    update,
)

from ecrd.metadata.database import Database
from ecrd.metadata.records import as_utc, as_utc_or_none, utcnow
from ecrd.metadata.schema import Timestamp, secret_tags, secret_version_stages, secret_versions
from ecrd.metadata.schema import secrets as secrets_table
from ecrd.metadata.statements import insert_ignoring_conflicts, upsert
from ecrd.sealing import Keyring, ResealReport, Unsealable, key_id_of

CURRENT = "AWSCURRENT"
PREVIOUS = "AWSPREVIOUS"
# Versions kept per secret (AWS's quota is about 100); the oldest ones without a staging label
# go beyond it, so a retried ClientRequestToken still finds its version for a long while.
MAX_VERSIONS = 100
# Secrets past their recovery window deleted by one write (bounded work per request).
PURGE_BATCH = 100
RESEAL_PAGE = 100
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SECRET_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:([a-z0-9-]+):(\d{12}):secret:(.+)$")
_STRING, _BINARY = b"s", b"b"
_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


@dataclass(frozen=True)
class SecretValue:
    """A SecretString or a SecretBinary (exactly one). Never shown in a repr."""

    text: str | None = field(default=None, repr=False)
    binary: bytes | None = field(default=None, repr=False)

    def plain(self) -> bytes:
        """What is sealed: a kind byte, then the value's bytes."""
        if self.text is not None:
            return _STRING + self.text.encode()
        assert self.binary is not None
        return _BINARY + self.binary

    @classmethod
    def from_plain(cls, plain: bytes) -> SecretValue:
        if plain[:1] == _STRING:
            return cls(text=plain[1:].decode())
        return cls(binary=plain[1:])

    def same_as(self, other: SecretValue) -> bool:
        return hmac.compare_digest(self.plain(), other.plain())


@dataclass(frozen=True)
class SecretRecord:
    id: int
    account_id: str
    region: str
    name: str
    arn: str
    description: str | None
    kms_key_id: str | None
    created_at: datetime
    changed_at: datetime
    accessed_on: datetime | None
    # When DeleteSecret was called, and when the secret goes (both None unless scheduled).
    deleted_at: datetime | None
    purge_at: datetime | None

    @property
    def scheduled_for_deletion(self) -> bool:
        return self.deleted_at is not None


@dataclass(frozen=True)
class SecretDetails:
    """A secret with its tags and the staging labels of each version that has some."""

    record: SecretRecord
    tags: dict[str, str]
    stages: dict[str, tuple[str, ...]]


@dataclass(frozen=True)
class SecretVersion:
    version_id: str
    created_at: datetime
    stages: tuple[str, ...]
    value: SecretValue = field(repr=False)


@dataclass(frozen=True)
class NewVersion:
    version_id: str
    value: SecretValue = field(repr=False)
    stages: tuple[str, ...] = (CURRENT,)


class Refusal(enum.Enum):
    """Why a write found nothing to act on."""

    GONE = "gone"  # no such secret (deleted or purged meanwhile)
    SCHEDULED = "scheduled"  # scheduled for deletion


class VersionWrite(enum.Enum):
    ADDED = "added"
    # A version with that id and the same value exists: the retry changes nothing.
    UNCHANGED = "unchanged"
    # A version with that id and another value exists.
    CONFLICT = "conflict"


@dataclass(frozen=True)
class Created:
    """What CreateSecret found or made: the secret, whether it was made now, and what became
    of its first version (None when the request had no value)."""

    record: SecretRecord
    created: bool
    version: VersionWrite | None


@dataclass(frozen=True)
class SecretFilter:
    """One ListSecrets filter: a key and its values, each maybe `!`-negated."""

    key: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Listing:
    filters: tuple[SecretFilter, ...] = ()
    include_deleted: bool = False
    sort_by: str = "created-date"
    descending: bool = False


def secret_context(arn: str, version_id: str) -> str:
    """What a version's sealed value is bound to."""
    return f"secret:{arn}:{version_id}"


def _record(row: Any) -> SecretRecord:
    return SecretRecord(
        id=row.id,
        account_id=row.account_id,
        region=row.region,
        name=row.name,
        arn=row.arn,
        description=row.description,
        kms_key_id=row.kms_key_id,
        created_at=as_utc(row.created_at),
        changed_at=as_utc(row.changed_at),
        accessed_on=as_utc_or_none(row.accessed_on),
        deleted_at=as_utc_or_none(row.deleted_at),
        purge_at=as_utc_or_none(row.purge_at),
    )


def _scope(account_id: str, region: str) -> ColumnElement[bool]:
    return (secrets_table.c.account_id == account_id) & (secrets_table.c.region == region)


def _not_purged(now: datetime) -> ColumnElement[bool]:
    return secrets_table.c.purge_at.is_(None) | (secrets_table.c.purge_at > now)


class SecretStore:
    def __init__(self, database: Database, keyring: Keyring) -> None:
        self._database = database
        self._keyring = keyring

    # --- reads ---------------------------------------------------------------------------

    async def find(self, account_id: str, region: str, secret_id: str) -> SecretRecord | None:
        """The secret `secret_id` names in the account and region: its name, its ARN, or its
        ARN without the six random characters (a partial ARN). Scheduled ones too; purged
        ones (past their recovery window) never."""
        candidates = [secret_id]
        if secret_id.startswith("arn:"):
            match = SECRET_ARN.match(secret_id)
            if match is None or (match.group(2), match.group(1)) != (account_id, region):
                return None
            candidates.append(match.group(3))
        now = utcnow()

        def work(connection: Connection) -> SecretRecord | None:
            scope = _scope(account_id, region) & _not_purged(now)
            if len(candidates) == 2:
                full = select(secrets_table).where(scope & (secrets_table.c.arn == secret_id))
                row = connection.execute(full).first()
                if row is not None:
                    return _record(row)
            named = select(secrets_table).where(scope & (secrets_table.c.name == candidates[-1]))
            row = connection.execute(named).first()
            return None if row is None else _record(row)

        return await self._database.read(work)

    async def details(self, record: SecretRecord) -> SecretDetails:
        def work(connection: Connection) -> SecretDetails:
            tags, stages = _tags_and_stages(connection, [record.id])
            return SecretDetails(record, tags.get(record.id, {}), stages.get(record.id, {}))

        return await self._database.read(work)

    async def version(
        self, record: SecretRecord, version_id: str | None, stage: str | None
    ) -> SecretVersion | None:
        """The version with that id (and that label, when both are given), or the one the
        label is on; opened. None when there is none. Unsealable when it does not open."""
        query = select(secret_versions).where(secret_versions.c.secret_id == record.id)
        if version_id is not None:
            query = query.where(secret_versions.c.version_id == version_id)
        if stage is not None:
            labelled = select(secret_version_stages.c.version_id).where(
                (secret_version_stages.c.secret_id == record.id)
                & (secret_version_stages.c.stage == stage)
            )
            query = query.where(secret_versions.c.version_id == labelled.scalar_subquery())

        def work(connection: Connection) -> tuple[Any, tuple[str, ...]] | None:
            row = connection.execute(query).first()
            if row is None:
                return None
            labels = connection.execute(
                select(secret_version_stages.c.stage)
                .where(
                    (secret_version_stages.c.secret_id == record.id)
                    & (secret_version_stages.c.version_id == row.version_id)
                )
                .order_by(secret_version_stages.c.stage)
            ).scalars()
            return row, tuple(labels)

        found = await self._database.read(work)
        if found is None:
            return None
        row, labels = found
        plain = self._keyring.open(row.sealed_value, secret_context(record.arn, row.version_id))
        return SecretVersion(
            row.version_id, as_utc(row.created_at), labels, SecretValue.from_plain(plain)
        )

    async def page(
        self, account_id: str, region: str, listing: Listing, after: Any, limit: int
    ) -> list[SecretDetails]:
        """Up to `limit` secrets of the account and region that pass the filters, in the
        listing's order, after the key `after` (see `sort_key`)."""
        now = utcnow()
        key = _sort_column(listing.sort_by)
        query = select(secrets_table).where(_scope(account_id, region) & _not_purged(now))
        if not listing.include_deleted:
            query = query.where(secrets_table.c.deleted_at.is_(None))
        for condition in map(_filter_condition, listing.filters):
            query = query.where(condition)
        if after is not None:
            value, last_id = after
            later = (key < value) if listing.descending else (key > value)
            beyond = (
                secrets_table.c.id < last_id if listing.descending else secrets_table.c.id > last_id
            )
            query = query.where(later | ((key == value) & beyond))
        if listing.descending:
            query = query.order_by(key.desc(), secrets_table.c.id.desc())
        else:
            query = query.order_by(key, secrets_table.c.id)
        query = query.limit(limit)

        def work(connection: Connection) -> list[SecretDetails]:
            records = [_record(row) for row in connection.execute(query)]
            tags, stages = _tags_and_stages(connection, [record.id for record in records])
            return [
                SecretDetails(record, tags.get(record.id, {}), stages.get(record.id, {}))
                for record in records
            ]

        return await self._database.read(work)

    # --- writes --------------------------------------------------------------------------

    async def create(
        self,
        record: SecretRecord,
        tags: dict[str, str],
        version: NewVersion | None,
    ) -> Created:
        """Store a new secret (`record.id` is ignored) with its tags and first version; or,
        when its name is taken, the secret that has it (and whether `version` is already
        its version with the same value: a retried CreateSecret)."""
        now = record.created_at
        scope = _scope(record.account_id, record.region)
        same_name = scope & (secrets_table.c.name == record.name)
        insert = insert_ignoring_conflicts(
            self._database.dialect,
            secrets_table,
            account_id=record.account_id,
            region=record.region,
            name=record.name,
            arn=record.arn,
            description=record.description,
            kms_key_id=record.kms_key_id,
            created_at=now,
            changed_at=now,
        ).returning(secrets_table.c.id)

        def work(connection: Connection) -> Created:
            _purge(connection, now, same_name)  # its name is free once its window has passed
            _purge(connection, now)
            inserted = connection.execute(insert).scalar()
            if inserted is None:
                found = _record(connection.execute(select(secrets_table).where(same_name)).one())
                outcome = None
                if version is not None and not found.scheduled_for_deletion:
                    outcome = self._existing_version(connection, found, version)
                return Created(found, False, outcome)
            made = dataclasses.replace(record, id=inserted)
            _set_tags(connection, inserted, tags)
            outcome = None
            if version is not None:
                outcome = self._write_version(connection, made, version, now)
            return Created(made, True, outcome)

        return await self._database.write(work)

    async def put_version(
        self, record: SecretRecord, version: NewVersion
    ) -> Refusal | tuple[VersionWrite, tuple[str, ...]]:
        """Add a version (moving its labels to it; the version AWSCURRENT leaves becomes
        AWSPREVIOUS), unless one with its id exists: then whether the value is the same, and
        that version's labels."""
        now = utcnow()

        def work(connection: Connection) -> Refusal | tuple[VersionWrite, tuple[str, ...]]:
            locked = _locked(connection, record.id, now)
            if isinstance(locked, Refusal):
                return locked
            existing = self._existing_version(connection, locked, version)
            if existing is not None:
                return existing, _labels(connection, record.id, version.version_id)
            return self._write_version(connection, locked, version, now), version.stages

        return await self._database.write(work)

    async def update(
        self,
        record: SecretRecord,
        changes: dict[str, str | None],
        version: NewVersion | None,
    ) -> Refusal | VersionWrite | None:
        """Change the description and KMS key id (`changes`, by column name) and add a
        version when one is given (its outcome, else None)."""
        now = utcnow()

        def work(connection: Connection) -> Refusal | VersionWrite | None:
            locked = _locked(connection, record.id, now)
            if isinstance(locked, Refusal):
                return locked
            outcome = None
            if version is not None:
                outcome = self._existing_version(connection, locked, version)
                if outcome is None:
                    outcome = self._write_version(connection, locked, version, now)
            if changes or outcome == VersionWrite.ADDED:
                connection.execute(
                    update(secrets_table)
                    .where(secrets_table.c.id == record.id)
                    .values(changed_at=now, **changes)
                )
            return outcome

        return await self._database.write(work)

    async def schedule_deletion(
        self, record: SecretRecord, purge_at: datetime
    ) -> Refusal | SecretRecord:
        now = utcnow()

        def work(connection: Connection) -> Refusal | SecretRecord:
            locked = _locked(connection, record.id, now)
            if isinstance(locked, Refusal):
                return locked
            connection.execute(
                update(secrets_table)
                .where(secrets_table.c.id == record.id)
                .values(deleted_at=now, purge_at=purge_at, changed_at=now)
            )
            _purge(connection, now)
            return dataclasses.replace(locked, deleted_at=now, purge_at=purge_at, changed_at=now)

        return await self._database.write(work)

    async def delete_now(self, record: SecretRecord) -> None:
        """Delete the secret with everything it has, scheduled or not."""
        now = utcnow()

        def work(connection: Connection) -> None:
            connection.execute(delete(secrets_table).where(secrets_table.c.id == record.id))
            _purge(connection, now)

        await self._database.write(work)

    async def restore(self, record: SecretRecord) -> bool:
        """Cancel a scheduled deletion; False when the secret is gone (purged meanwhile)."""
        now = utcnow()

        def work(connection: Connection) -> bool:
            restored = connection.execute(
                update(secrets_table)
                .where((secrets_table.c.id == record.id) & _not_purged(now))
                .values(deleted_at=None, purge_at=None)
            )
            _purge(connection, now)
            return bool(restored.rowcount)

        return await self._database.write(work)

    async def tag(self, record: SecretRecord, tags: dict[str, str], limit: int) -> Refusal | bool:
        """Add or replace tags; False (and nothing changed) when the secret would have more
        than `limit`."""
        now = utcnow()

        def work(connection: Connection) -> Refusal | bool:
            locked = _locked(connection, record.id, now)
            if isinstance(locked, Refusal):
                return locked
            keys = set(
                connection.execute(
                    select(secret_tags.c.key).where(secret_tags.c.secret_id == record.id)
                ).scalars()
            )
            if len(keys | set(tags)) > limit:
                return False
            _set_tags(connection, record.id, tags)
            return True

        return await self._database.write(work)

    async def untag(self, record: SecretRecord, keys: Sequence[str]) -> Refusal | None:
        now = utcnow()

        def work(connection: Connection) -> Refusal | None:
            locked = _locked(connection, record.id, now)
            if isinstance(locked, Refusal):
                return locked
            if keys:
                connection.execute(
                    delete(secret_tags).where(
                        (secret_tags.c.secret_id == record.id) & secret_tags.c.key.in_(keys)
                    )
                )
            return None

        return await self._database.write(work)

    async def note_access(self, record: SecretRecord, day: datetime) -> None:
        """Record that a value was read on `day` (midnight UTC); one write a day at most."""
        statement = (
            update(secrets_table)
            .where(
                (secrets_table.c.id == record.id)
                & (secrets_table.c.accessed_on.is_(None) | (secrets_table.c.accessed_on < day))
            )
            .values(accessed_on=day)
        )
        await self._database.write(lambda connection: connection.execute(statement))

    async def reseal_page(self, after: tuple[int, str] | None) -> tuple[ResealReport, Any]:
        """Seal the next page of stored values with the keyring's first key (opening every one,
        so values that do not open are counted, whatever key they name); the report and the
        key to continue after (None at the end). A value written meanwhile is left as it is (it
        was sealed with the first key anyway)."""
        query = (
            select(
                secret_versions.c.secret_id,
                secret_versions.c.version_id,
                secret_versions.c.sealed_value,
                secrets_table.c.arn,
            )
            .join(secrets_table, secrets_table.c.id == secret_versions.c.secret_id)
            .order_by(secret_versions.c.secret_id, secret_versions.c.version_id)
            .limit(RESEAL_PAGE)
        )
        if after is not None:
            query = query.where(
                (secret_versions.c.secret_id > after[0])
                | (
                    (secret_versions.c.secret_id == after[0])
                    & (secret_versions.c.version_id > after[1])
                )
            )

        def work(connection: Connection) -> tuple[ResealReport, Any]:
            rows = list(connection.execute(query))
            resealed = current = 0
            unopened: dict[str, int] = {}
            for row in rows:
                context = secret_context(row.arn, row.version_id)
                try:
                    # Opened even when sealed with the first key: the re-seal checks them all.
                    plain = self._keyring.open(row.sealed_value, context)
                except Unsealable as error:
                    unopened[error.key_id or ""] = unopened.get(error.key_id or "", 0) + 1
                    continue
                if self._keyring.is_current(row.sealed_value):
                    current += 1
                    continue
                sealed = self._keyring.seal(plain, context)
                connection.execute(
                    update(secret_versions)
                    .where(
                        (secret_versions.c.secret_id == row.secret_id)
                        & (secret_versions.c.version_id == row.version_id)
                        & (secret_versions.c.sealed_value == row.sealed_value)
                    )
                    .values(sealed_value=sealed)
                )
                resealed += 1
            last = (rows[-1].secret_id, rows[-1].version_id) if len(rows) == RESEAL_PAGE else None
            return ResealReport(resealed, current, unopened), last

        return await self._database.write(work)

    async def key_ids_in_use(self) -> dict[str, int]:
        """How many stored values each key id seals ("" for values naming none)."""
        counts: dict[str, int] = {}
        after: tuple[int, str] | None = None
        while True:
            query = (
                select(
                    secret_versions.c.secret_id,
                    secret_versions.c.version_id,
                    secret_versions.c.sealed_value,
                )
                .order_by(secret_versions.c.secret_id, secret_versions.c.version_id)
                .limit(RESEAL_PAGE * 10)
            )
            if after is not None:
                query = query.where(
                    (secret_versions.c.secret_id > after[0])
                    | (
                        (secret_versions.c.secret_id == after[0])
                        & (secret_versions.c.version_id > after[1])
                    )
                )
            rows = await self._database.read(_all_rows(query))
            for row in rows:
                key_id = key_id_of(row.sealed_value) or ""
                counts[key_id] = counts.get(key_id, 0) + 1
            if len(rows) < RESEAL_PAGE * 10:
                return counts
            after = (rows[-1].secret_id, rows[-1].version_id)

    # --- inside a write ------------------------------------------------------------------

    def _existing_version(
        self, connection: Connection, record: SecretRecord, version: NewVersion
    ) -> VersionWrite | None:
        """UNCHANGED or CONFLICT when the secret has a version with that id; else None."""
        sealed = connection.execute(
            select(secret_versions.c.sealed_value).where(
                (secret_versions.c.secret_id == record.id)
                & (secret_versions.c.version_id == version.version_id)
            )
        ).scalar()
        if sealed is None:
            return None
        stored = self._keyring.open(sealed, secret_context(record.arn, version.version_id))
        same = SecretValue.from_plain(stored).same_as(version.value)
        return VersionWrite.UNCHANGED if same else VersionWrite.CONFLICT

    def _write_version(
        self, connection: Connection, record: SecretRecord, version: NewVersion, now: datetime
    ) -> VersionWrite:
        sealed = self._keyring.seal(
            version.value.plain(), secret_context(record.arn, version.version_id)
        )
        connection.execute(
            secret_versions.insert().values(
                secret_id=record.id,
                version_id=version.version_id,
                sealed_value=sealed,
                created_at=now,
            )
        )
        for stage in version.stages:
            holder = connection.execute(
                select(secret_version_stages.c.version_id).where(
                    (secret_version_stages.c.secret_id == record.id)
                    & (secret_version_stages.c.stage == stage)
                )
            ).scalar()
            if stage == CURRENT and holder is not None:
                self._label(connection, record.id, PREVIOUS, holder)
            self._label(connection, record.id, stage, version.version_id)
        _prune_versions(connection, record.id)
        connection.execute(
            update(secrets_table).where(secrets_table.c.id == record.id).values(changed_at=now)
        )
        return VersionWrite.ADDED

    def _label(self, connection: Connection, secret_id: int, stage: str, version_id: str) -> None:
        connection.execute(
            upsert(
                self._database.dialect,
                secret_version_stages,
                ["secret_id", "stage"],
                secret_id=secret_id,
                stage=stage,
                version_id=version_id,
            )
        )


def sort_key(listing: Listing, details: SecretDetails) -> tuple[str, int]:
    """The key a page continues after: the sort column's value (text) and the id."""
    record = details.record
    if listing.sort_by == "name":
        return record.name, record.id
    moment = {
        "last-changed-date": record.changed_at,
        "last-accessed-date": record.accessed_on or EPOCH,
    }.get(listing.sort_by, record.created_at)
    return moment.isoformat(), record.id


def sort_value(listing: Listing, text: str) -> Any:
    """The value of a page key's text, as the sort column compares (ValueError if not)."""
    return text if listing.sort_by == "name" else datetime.fromisoformat(text)


def _sort_column(sort_by: str) -> ColumnElement[Any]:
    if sort_by == "name":
        return secrets_table.c.name
    if sort_by == "last-changed-date":
        return secrets_table.c.changed_at
    if sort_by == "last-accessed-date":
        return func.coalesce(secrets_table.c.accessed_on, literal(EPOCH, Timestamp))
    return secrets_table.c.created_at


def _filter_condition(secret_filter: SecretFilter) -> ColumnElement[bool]:
    """Values of one filter: any positive one matches, and no negated one (`!value`)."""
    positive = [v for v in secret_filter.values if not v.startswith("!")]
    negative = [v[1:] for v in secret_filter.values if v.startswith("!")]
    condition: ColumnElement[bool] = true()
    if positive:
        condition = or_(*(_matches(secret_filter.key, value) for value in positive))
    if negative:
        condition = and_(
            condition, *(not_(_matches(secret_filter.key, value)) for value in negative)
        )
    return condition


def _prefix(column: ColumnElement[str], value: str, fold: bool = False) -> ColumnElement[bool]:
    start = func.substr(column, 1, len(value))
    if fold:
        return func.lower(start) == value.lower()
    return start == value


def _tag_exists(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    return exists().where((secret_tags.c.secret_id == secrets_table.c.id) & condition)


def _matches(key: str, value: str) -> ColumnElement[bool]:
    """AWS's filter keys: prefix matches, case-sensitive but for `description`; `all` splits
    the value into words and matches each anywhere in the name, description and tags."""
    if key == "name":
        return _prefix(secrets_table.c.name, value)
    if key == "description":
        return secrets_table.c.description.is_not(None) & _prefix(
            secrets_table.c.description, value, fold=True
        )
    if key == "tag-key":
        return _tag_exists(_prefix(secret_tags.c.key, value))
    if key == "tag-value":
        return _tag_exists(_prefix(secret_tags.c.value, value))
    if key == "primary-region":
        # ecrd does not replicate: every secret is in its primary region.
        return _prefix(secrets_table.c.region, value)
    if key == "all":
        words = words_of(value)
        if not words:
            return true()
        return or_(*(_word_anywhere(word) for word in words))
    return false()  # owning-service: no secret here is another service's


def words_of(text: str) -> list[str]:
    """The words AWS's search breaks text into: at a change of case, between letters and
    digits, and at punctuation (`credsDatabase#892` is creds, Database, 892)."""
    return _WORD.findall(text)


def _word_anywhere(word: str) -> ColumnElement[bool]:
    folded = word.lower()

    def contains(column: ColumnElement[str]) -> ColumnElement[bool]:
        return func.lower(column).contains(folded, autoescape=True)

    return or_(
        contains(secrets_table.c.name),
        secrets_table.c.description.is_not(None) & contains(secrets_table.c.description),
        _tag_exists(contains(secret_tags.c.key) | contains(secret_tags.c.value)),
    )


def _all_rows(query: Any) -> Callable[[Connection], list[Any]]:
    def work(connection: Connection) -> list[Any]:
        return list(connection.execute(query))

    return work


def _locked(connection: Connection, secret_id: int, now: datetime) -> Refusal | SecretRecord:
    """The secret's row, locked for the transaction; or why there is nothing to write to."""
    row = connection.execute(
        select(secrets_table)
        .where((secrets_table.c.id == secret_id) & _not_purged(now))
        .with_for_update()
    ).first()
    if row is None:
        return Refusal.GONE
    record = _record(row)
    return Refusal.SCHEDULED if record.scheduled_for_deletion else record


def _purge(connection: Connection, now: datetime, also: ColumnElement[bool] | None = None) -> None:
    """Delete a batch of secrets whose recovery window has passed (`also`: only among those)."""
    due = secrets_table.c.purge_at <= now
    if also is not None:
        due = due & also
    batch = select(secrets_table.c.id).where(due).limit(PURGE_BATCH)
    connection.execute(delete(secrets_table).where(secrets_table.c.id.in_(batch)))


def _set_tags(connection: Connection, secret_id: int, tags: dict[str, str]) -> None:
    if not tags:
        return
    connection.execute(
        delete(secret_tags).where(
            (secret_tags.c.secret_id == secret_id) & secret_tags.c.key.in_(list(tags))
        )
    )
    connection.execute(
        secret_tags.insert(),
        [{"secret_id": secret_id, "key": key, "value": value} for key, value in tags.items()],
    )


def _labels(connection: Connection, secret_id: int, version_id: str) -> tuple[str, ...]:
    return tuple(
        connection.execute(
            select(secret_version_stages.c.stage)
            .where(
                (secret_version_stages.c.secret_id == secret_id)
                & (secret_version_stages.c.version_id == version_id)
            )
            .order_by(secret_version_stages.c.stage)
        ).scalars()
    )


def _prune_versions(connection: Connection, secret_id: int) -> None:
    """Beyond MAX_VERSIONS, delete the oldest versions no label is on."""
    count = connection.execute(
        select(func.count()).where(secret_versions.c.secret_id == secret_id)
    ).scalar_one()
    if count <= MAX_VERSIONS:
        return
    labelled = exists().where(
        (secret_version_stages.c.secret_id == secret_versions.c.secret_id)
        & (secret_version_stages.c.version_id == secret_versions.c.version_id)
    )
    stale = (
        select(secret_versions.c.version_id)
        .where((secret_versions.c.secret_id == secret_id) & ~labelled)
        .order_by(secret_versions.c.created_at)
        .limit(count - MAX_VERSIONS)
    )
    ids = list(connection.execute(stale).scalars())
    if ids:
        connection.execute(
            delete(secret_versions).where(
                (secret_versions.c.secret_id == secret_id) & secret_versions.c.version_id.in_(ids)
            )
        )


def _tags_and_stages(
    connection: Connection, ids: Iterable[int]
) -> tuple[dict[int, dict[str, str]], dict[int, dict[str, tuple[str, ...]]]]:
    ids = list(ids)
    tags: dict[int, dict[str, str]] = {}
    stages: dict[int, dict[str, tuple[str, ...]]] = {}
    if not ids:
        return tags, stages
    for row in connection.execute(
        select(secret_tags)
        .where(secret_tags.c.secret_id.in_(ids))
        .order_by(secret_tags.c.secret_id, secret_tags.c.key)
    ):
        tags.setdefault(row.secret_id, {})[row.key] = row.value
    for row in connection.execute(
        select(secret_version_stages)
        .where(secret_version_stages.c.secret_id.in_(ids))
        .order_by(
            secret_version_stages.c.secret_id,
            secret_version_stages.c.version_id,
            secret_version_stages.c.stage,
        )
    ):
        versions = stages.setdefault(row.secret_id, {})
        versions[row.version_id] = (*versions.get(row.version_id, ()), row.stage)
    return tags, stages
