"""Access keys: making new ones, and the root key an empty store starts with."""

from __future__ import annotations

import re
import secrets
import string
import sys
from dataclasses import dataclass
from pathlib import Path

from ecrd.metadata.identities import IdentityStore
from ecrd.settings import Settings

# AWS's own forms: "AKIA" and 16 upper-case letters or digits; a 40-character secret.
_ID_ALPHABET = string.ascii_uppercase + "234567"
_SECRET_ALPHABET = string.ascii_letters + string.digits
# IAM's user-name characters, ASCII only; callers use fullmatch.
USER_NAME_PATTERN = re.compile(r"[A-Za-z0-9_+=,.@-]{1,64}")
ACCOUNT_PATTERN = re.compile(r"[0-9]{12}")


@dataclass(frozen=True)
class NewKey:
    access_key_id: str
    secret_access_key: str


def new_key() -> NewKey:
    return NewKey(
        "AKIA" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(16)),
        "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40)),
    )


async def bootstrap_root_key(settings: Settings, identities: IdentityStore) -> NewKey | None:
    """The default account's root key, for a store that has none yet.

    With ECRD_BOOTSTRAP_* set, that pair is the root key (added at any start where it is
    missing, so a CI script can rely on it). Otherwise an empty store gets a generated key,
    returned so that it can be shown once; None when nothing was generated.
    """
    if settings.bootstrap_access_key_id:
        await _ensure_given_key(settings, identities)
        return None
    key = new_key()
    if not await identities.create_root_key_if_none(
        key.access_key_id, key.secret_access_key, settings.account_id
    ):
        return None
    return key


async def _ensure_given_key(settings: Settings, identities: IdentityStore) -> None:
    # The settings checked the pair's form when they were read.
    secret = settings.bootstrap_secret_access_key.get_secret_value()
    stored = await identities.ensure_root_key(
        settings.bootstrap_access_key_id, secret, settings.account_id
    )
    if not secrets.compare_digest(stored, secret):
        raise ValueError(
            f"access key {settings.bootstrap_access_key_id} already exists with another secret"
        )


def print_bootstrap_key(key: NewKey, settings: Settings) -> None:
    """Show a generated root key once, on the terminal (never through the logs), as the
    commands that make it the aws CLI's profile "ecrd" (a user's default profile is theirs)."""
    # The command as the user can type it: `.venv/bin/ecrd` after scripts/serve.
    command = sys.argv[0] if Path(sys.argv[0]).name == "ecrd" else "ecrd"
    print(
        "\n"
        f"ecrd created the root access key of account {settings.account_id}.\n"
        "It is shown only this once; keep the secret now. These commands store it as the\n"
        "aws CLI profile ecrd:\n\n"
        f"    aws configure set aws_access_key_id {key.access_key_id} --profile ecrd\n"
        f"    aws configure set aws_secret_access_key {key.secret_access_key} --profile ecrd\n"
        f"    aws configure set region {settings.region} --profile ecrd\n"
        "    export AWS_PROFILE=ecrd\n\n"
        f"More keys: {command} keys create --user NAME [--policy FILE]\n",
        file=sys.stderr,
        flush=True,
    )
