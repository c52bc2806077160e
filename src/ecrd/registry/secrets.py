"""Secrets Manager's rules for secrets, as the API reference documents them.

A secret belongs to an account and a region and is named by its name, its ARN
(`arn:aws:secretsmanager:<region>:<account>:secret:<name>-<6 random characters>`) or that ARN
without the random characters. A value is a SecretString or a SecretBinary, never both; each
value is a version whose id is the request's ClientRequestToken, so a retry with the same token
and value changes nothing, and the same token with another value is refused. Staging labels
mark versions: a new value gets AWSCURRENT unless told otherwise, and the version that loses
AWSCURRENT gets AWSPREVIOUS. DeleteSecret schedules the deletion 7 to 30 days ahead (30 by
default), or deletes at once when forced; until then the secret is described and restored, and
refuses everything else; its name stays taken until it is purged.

`current_value` is how ecrd itself reads a secret (a pull-through cache rule's credentials):
without a caller to authorize, as ECR's own service reads it.
"""

from __future__ import annotations

import secrets
import string
import uuid
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from ecrd.errors import (
    ParameterInvalid,
    SecretAlreadyExists,
    SecretNotFound,
    SecretScheduledForDeletion,
    SecretUndecryptable,
    TooManyTags,
)
from ecrd.metadata.records import UNSTORED_ID, utcnow
from ecrd.metadata.secrets import (
    CURRENT,
    SECRET_ARN,
    Listing,
    NewVersion,
    Refusal,
    SecretDetails,
    SecretRecord,
    SecretStore,
    SecretValue,
    SecretVersion,
    VersionWrite,
)
from ecrd.sealing import Unsealable

T = TypeVar("T")
# Secrets Manager's quota of tags per secret.
MAX_TAGS = 50
DEFAULT_RECOVERY_DAYS = 30
RECOVERY_DAYS = range(7, 31)
_NAME_CHARACTERS = frozenset(string.ascii_letters + string.digits + "/_+=.@-")
_SUFFIX_CHARACTERS = string.ascii_letters + string.digits

NOT_FOUND = "Secrets Manager can't find the specified secret."
MARKED_FOR_DELETION = (
    "You can't perform this operation on the secret because it was marked for deletion."
)
NAME_SCHEDULED = (
    "You can't create this secret because a secret with this name is already scheduled for "
    "deletion."
)
VERSION_EXISTS = "You can't modify an existing version, you can only create a new version."
BOTH_VALUES = (
    "You can't specify both a binary secret value and a string secret value in the same secret."
)


@dataclass(frozen=True)
class Written:
    """What a write that may add a version answers: the secret, and the version's id and
    labels (None when no version was written)."""

    record: SecretRecord
    version_id: str | None = None
    stages: tuple[str, ...] = ()


def secret_arn(account_id: str, region: str, name: str) -> str:
    """A new secret's ARN: its name, a hyphen and six random letters or digits, as AWS's."""
    suffix = "".join(secrets.choice(_SUFFIX_CHARACTERS) for _ in range(6))
    return f"arn:aws:secretsmanager:{region}:{account_id}:secret:{name}-{suffix}"


def scope_of(account_id: str, region: str, secret_id: str) -> tuple[str, str]:
    """The account and region a SecretId is in: an ARN's own, else the caller's."""
    match = SECRET_ARN.match(secret_id)
    if match is None:
        return account_id, region
    return match.group(2), match.group(1)


def value_of(text: str | None, binary: bytes | None) -> SecretValue | None:
    """The value a request gives (None if none); ParameterInvalid for both at once."""
    if text is not None and binary is not None:
        raise ParameterInvalid(BOTH_VALUES)
    if text is None and binary is None:
        return None
    return SecretValue(text=text, binary=binary)


class SecretService:
    def __init__(self, store: SecretStore) -> None:
        self._store = store

    # --- what ecrd itself reads ----------------------------------------------------------

    async def current_value(self, account_id: str, region: str, secret_id: str) -> str:
        """The AWSCURRENT SecretString of the secret `secret_id` (name or ARN) names in the
        account and region. SecretNotFound when there is none (no secret, scheduled for
        deletion, no current version, or only a SecretBinary); SecretUndecryptable when
        the keyring cannot open it."""
        record = await self._found(account_id, region, secret_id)
        if record.scheduled_for_deletion:
            raise SecretNotFound(f"the secret {record.arn} is scheduled for deletion")
        version = await self._version(record, None, CURRENT)
        if version.value.text is None:
            raise SecretNotFound(f"the secret {record.arn} holds no SecretString")
        await self._accessed(record)
        return version.value.text

    async def arn_of(self, account_id: str, region: str, secret_id: str) -> str:
        """The full ARN of the secret `secret_id` names; SecretNotFound when none (or one
        scheduled for deletion) does."""
        record = await self._found(account_id, region, secret_id)
        if record.scheduled_for_deletion:
            raise SecretNotFound(f"the secret {record.arn} is scheduled for deletion")
        return record.arn

    async def resource_arn(self, account_id: str, region: str, secret_id: str) -> str:
        """What a call on `secret_id` is authorized against: the secret's full ARN, or for
        one that does not exist the ARN the id names (`...:secret:<name>` for a name)."""
        record = await self._store.find(account_id, region, secret_id)
        if record is not None:
            return record.arn
        if secret_id.startswith("arn:"):
            return secret_id
        return f"arn:aws:secretsmanager:{region}:{account_id}:secret:{secret_id}"

    # --- the API -------------------------------------------------------------------------

    async def create(
        self,
        account_id: str,
        region: str,
        name: str,
        value: SecretValue | None,
        version_id: str | None,
        description: str | None,
        kms_key_id: str | None,
        tags: dict[str, str],
    ) -> Written:
        check_name(name)
        check_tags(tags)
        now = utcnow()
        record = SecretRecord(
            id=UNSTORED_ID,
            account_id=account_id,
            region=region,
            name=name,
            arn=secret_arn(account_id, region, name),
            description=description,
            kms_key_id=kms_key_id,
            created_at=now,
            changed_at=now,
            accessed_on=None,
            deleted_at=None,
            purge_at=None,
        )
        version = None if value is None else NewVersion(version_id or _new_version_id(), value)
        created = await self._opening(self._store.create(record, tags, version))
        if not created.created:
            if created.record.scheduled_for_deletion:
                raise SecretScheduledForDeletion(NAME_SCHEDULED)
            if created.version != VersionWrite.UNCHANGED:
                raise SecretAlreadyExists(
                    f"The operation failed because the secret {name} already exists."
                )
        if version is None:
            return Written(created.record)
        return Written(created.record, version.version_id, version.stages)

    async def describe(self, account_id: str, region: str, secret_id: str) -> SecretDetails:
        """A secret with its tags and labels, scheduled for deletion or not."""
        return await self._store.details(await self._found(account_id, region, secret_id))

    async def get_value(
        self,
        account_id: str,
        region: str,
        secret_id: str,
        version_id: str | None,
        stage: str | None,
    ) -> tuple[SecretRecord, SecretVersion]:
        """The version `version_id` and/or `stage` names (AWSCURRENT by default), opened."""
        record = await self._live(account_id, region, secret_id)
        if version_id is None and stage is None:
            stage = CURRENT
        version = await self._version(record, version_id, stage)
        await self._accessed(record)
        return record, version

    async def put_value(
        self,
        account_id: str,
        region: str,
        secret_id: str,
        value: SecretValue | None,
        version_id: str | None,
        stages: Sequence[str] | None,
    ) -> Written:
        if value is None:
            raise ParameterInvalid("You must provide either SecretString or SecretBinary.")
        record = await self._live(account_id, region, secret_id)
        labels = tuple(dict.fromkeys(stages)) if stages else (CURRENT,)
        version = NewVersion(version_id or _new_version_id(), value, labels)
        outcome = self._refused(await self._opening(self._store.put_version(record, version)))
        written, labels = outcome
        if written == VersionWrite.CONFLICT:
            raise SecretAlreadyExists(VERSION_EXISTS)
        return Written(record, version.version_id, labels)

    async def update(
        self,
        account_id: str,
        region: str,
        secret_id: str,
        changes: dict[str, str | None],
        value: SecretValue | None,
        version_id: str | None,
    ) -> Written:
        """Change the description and KMS key id (`changes`: `description`, `kms_key_id`)
        and, with a value, add it as the AWSCURRENT version."""
        record = await self._live(account_id, region, secret_id)
        version = None if value is None else NewVersion(version_id or _new_version_id(), value)
        outcome = self._refused(await self._opening(self._store.update(record, changes, version)))
        if outcome == VersionWrite.CONFLICT:
            raise SecretAlreadyExists(VERSION_EXISTS)
        if version is None:
            return Written(record)
        return Written(record, version.version_id, version.stages)

    async def delete(
        self,
        account_id: str,
        region: str,
        secret_id: str,
        recovery_days: int | None,
        force: bool,
    ) -> tuple[str, str, datetime]:
        """Schedule the deletion, or delete now when forced: (ARN, name, deletion date).
        Forcing the deletion of a secret that does not exist is not an error, as on AWS."""
        if force and recovery_days is not None:
            raise ParameterInvalid(
                "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays."
            )
        days = DEFAULT_RECOVERY_DAYS if recovery_days is None else recovery_days
        if days not in RECOVERY_DAYS:
            raise ParameterInvalid(
                "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive)."
            )
        now = utcnow()
        record = await self._store.find(account_id, region, secret_id)
        if record is None:
            if not force:
                raise SecretNotFound(NOT_FOUND)
            arn = await self.resource_arn(account_id, region, secret_id)
            match = SECRET_ARN.match(arn)
            return arn, match.group(3) if match else secret_id, now
        if force:
            await self._store.delete_now(record)
            return record.arn, record.name, now
        scheduled = self._refused(
            await self._store.schedule_deletion(record, now + timedelta(days=days))
        )
        assert scheduled.purge_at is not None
        return scheduled.arn, scheduled.name, scheduled.purge_at

    async def restore(self, account_id: str, region: str, secret_id: str) -> SecretRecord:
        """Cancel a scheduled deletion (a secret not scheduled is left as it is)."""
        record = await self._found(account_id, region, secret_id)
        if record.scheduled_for_deletion and not await self._store.restore(record):
            raise SecretNotFound(NOT_FOUND)
        return record

    async def tag(self, account_id: str, region: str, secret_id: str, tags: dict[str, str]) -> None:
        check_tags(tags)
        record = await self._live(account_id, region, secret_id)
        if not self._refused(await self._store.tag(record, tags, MAX_TAGS)):
            raise TooManyTags(f"A secret can have at most {MAX_TAGS} tags.")

    async def untag(
        self, account_id: str, region: str, secret_id: str, keys: Sequence[str]
    ) -> None:
        record = await self._live(account_id, region, secret_id)
        self._refused(await self._store.untag(record, list(dict.fromkeys(keys))))

    async def page(
        self, account_id: str, region: str, listing: Listing, after: Any, limit: int
    ) -> list[SecretDetails]:
        return await self._store.page(account_id, region, listing, after, limit)

    # --- helpers -------------------------------------------------------------------------

    async def _accessed(self, record: SecretRecord) -> None:
        """Record today as its LastAccessedDate (a write at most once a day per secret)."""
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        if record.accessed_on is None or record.accessed_on < today:
            await self._store.note_access(record, today)

    async def _found(self, account_id: str, region: str, secret_id: str) -> SecretRecord:
        record = await self._store.find(account_id, region, secret_id)
        if record is None:
            raise SecretNotFound(NOT_FOUND)
        return record

    async def _live(self, account_id: str, region: str, secret_id: str) -> SecretRecord:
        """The secret, which must not be scheduled for deletion."""
        record = await self._found(account_id, region, secret_id)
        if record.scheduled_for_deletion:
            raise SecretScheduledForDeletion(MARKED_FOR_DELETION)
        return record

    async def _version(
        self, record: SecretRecord, version_id: str | None, stage: str | None
    ) -> SecretVersion:
        version = await self._opening(self._store.version(record, version_id, stage))
        if version is not None:
            return version
        if version_id is not None and stage is not None:
            raise SecretNotFound(
                f"Secrets Manager can't find the specified secret value for VersionId: "
                f"{version_id} and staging label: {stage}"
            )
        if version_id is not None:
            raise SecretNotFound(
                f"Secrets Manager can't find the specified secret value for VersionId: {version_id}"
            )
        raise SecretNotFound(
            f"Secrets Manager can't find the specified secret value for staging label: {stage}"
        )

    @staticmethod
    async def _opening(work: Awaitable[T]) -> T:
        """Await `work`, answering a stored value that does not open as SecretUndecryptable
        (the message names the key, never the value)."""
        try:
            return await work
        except Unsealable as error:
            raise SecretUndecryptable(
                f"ecrd can't decrypt the secret value: {error.message}"
            ) from None

    @staticmethod
    def _refused(outcome: Refusal | T) -> T:
        """`outcome`, unless the store found the secret gone or scheduled for deletion."""
        if outcome is Refusal.GONE:
            raise SecretNotFound(NOT_FOUND)
        if outcome is Refusal.SCHEDULED:
            raise SecretScheduledForDeletion(MARKED_FOR_DELETION)
        return outcome


def check_name(name: str) -> None:
    """Secrets Manager's rule for names: ASCII letters, digits and / _ + = . @ -."""
    if not name or not set(name) <= _NAME_CHARACTERS:
        raise ParameterInvalid(
            "Invalid name. Must be a valid name containing alphanumeric characters, or any of "
            "the following: -/_+=.@!"
        )


def check_text(params: Any, where: str = "") -> None:
    """ParameterInvalid for a string that is not Unicode text (JSON's `\\ud800` decodes to a
    lone surrogate, which neither UTF-8 nor the stores can hold). The message names the member,
    never the value."""
    if isinstance(params, str):
        try:
            params.encode()
        except UnicodeEncodeError:
            raise ParameterInvalid(
                f"Invalid parameter at '{where}': the text is not valid Unicode"
            ) from None
    elif isinstance(params, dict):
        for key, value in params.items():
            check_text(key, where)
            check_text(value, f"{where}.{key}" if where else key)
    elif isinstance(params, list):
        for index, value in enumerate(params, start=1):
            check_text(value, f"{where}.{index}.member")


def check_tags(tags: dict[str, str]) -> None:
    if len(tags) > MAX_TAGS:
        raise TooManyTags(f"A secret can have at most {MAX_TAGS} tags.")
    if any(key.lower().startswith("aws:") for key in tags):
        raise ParameterInvalid("Tag keys prefixed with 'aws:' are reserved for AWS use.")


def _new_version_id() -> str:
    """A version id when the client gives no ClientRequestToken (the SDKs always do)."""
    return str(uuid.uuid4())
