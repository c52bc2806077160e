"""`ecrd sealing`: the keys that seal secret values, token signing keys and signing profiles'
keys at rest (docs/secrets.md).

    ecrd sealing new-key     print a new key line (`<id>:<base64>`) to add to the keyring
    ecrd sealing status      how many stored values each key seals, and which keys are missing
    ecrd sealing reseal      seal every stored value with the keyring's first key

A rotation: put a new key first (in the key file, or first in `sealing_keys`), restart the
servers, run `ecrd sealing reseal` (it exits non-zero, naming the keys, when a value did not
open), then drop the old key. `reseal` may run while the servers do: each value is replaced by
a compare-and-set, and what the servers write meanwhile is sealed with the new key already.

The keyring is read as the server reads it, but never made here: a missing key file is an
error (a new key could open nothing that is stored). cli.py adds the group with
`main.add_command(sealing_group(store_options, _settings))`, as `ecrd jobs` is added.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ecrd.jobs.commands import OptionsDecorator

if TYPE_CHECKING:
    from ecrd.metadata.secrets import SecretStore
    from ecrd.metadata.signing import SigningProfileStore as Profiles
    from ecrd.metadata.signing_keys import SigningKeyStore
    from ecrd.sealing import Keyring, ResealReport
    from ecrd.settings import Settings

Result = TypeVar("Result")


def sealing_group(
    store_options: OptionsDecorator, load_settings: Callable[..., Settings]
) -> click.Group:
    @click.group("sealing")
    def sealing() -> None:
        """The keys that seal secret values and signing keys in the metadata store."""

    @sealing.command("new-key")
    def new_key_command() -> None:
        """Print a new random key, to put first in the key file or in sealing_keys."""
        from ecrd.sealing import new_key

        click.echo(new_key().line())

    @sealing.command("status")
    @store_options
    def status(config_file: Path | None, **flags: Any) -> None:
        """How many stored values each key seals; exits non-zero if a key is missing."""
        settings = load_settings(config_file, **flags)

        async def work(
            keyring: Keyring, secrets: SecretStore, signing: SigningKeyStore, profiles: Profiles
        ) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
            return (
                await secrets.key_ids_in_use(),
                await signing.key_ids_in_use(),
                await profiles.key_ids_in_use(),
            )

        keyring, (values, signing_keys, profile_keys) = _on_store(settings, work)
        missing = False
        for key_id in keyring.key_ids:
            role = "seals" if key_id == keyring.primary_id else "opens"
            click.echo(
                f"{key_id}  {role}  secret values: {values.pop(key_id, 0)}  signing keys: "
                f"{signing_keys.pop(key_id, 0)}  signing profiles: {profile_keys.pop(key_id, 0)}"
            )
        for key_id in sorted(set(values) | set(signing_keys) | set(profile_keys)):
            if key_id == "plain":
                continue
            missing = True
            click.echo(
                f"{key_id or '?'}  MISSING from the keyring  secret values: "
                f"{values.get(key_id, 0)}  signing keys: {signing_keys.get(key_id, 0)}  "
                f"signing profiles: {profile_keys.get(key_id, 0)}"
            )
        if signing_keys.get("plain"):
            click.echo(f"not sealed yet (sealed at the next start): {signing_keys['plain']}")
        if missing:
            raise click.ClickException("some stored values are sealed with keys not in the keyring")

    @sealing.command("reseal")
    @store_options
    def reseal(config_file: Path | None, **flags: Any) -> None:
        """Seal every stored value with the keyring's first key."""
        settings = load_settings(config_file, **flags)

        async def work(
            keyring: Keyring, secrets: SecretStore, signing: SigningKeyStore, profiles: Profiles
        ) -> tuple[ResealReport, ResealReport, ResealReport]:
            from ecrd.sealing import ResealReport

            total = ResealReport()
            after: Any = None
            while True:
                report, after = await secrets.reseal_page(after)
                total = total + report
                if after is None:
                    break
            return total, await signing.reseal(), await profiles.reseal()

        keyring, (values, signing_keys, profile_keys) = _on_store(settings, work)
        click.echo(
            f"sealed with key {keyring.primary_id}: {values.resealed} secret values, "
            f"{signing_keys.resealed} signing keys and {profile_keys.resealed} signing profiles "
            f"re-sealed; {values.current}, {signing_keys.current} and {profile_keys.current} "
            "were already"
        )
        unopened = (values + signing_keys + profile_keys).unopened
        missing = {key: count for key, count in unopened.items() if key not in keyring.key_ids}
        altered = sum(count for key, count in unopened.items() if key in keyring.key_ids)
        problems = [
            f"{count} sealed with {key_id or 'no key id'}, which the keyring lacks"
            for key_id, count in sorted(missing.items())
        ]
        if altered:
            problems.append(
                f"{altered} that do not open with their key (altered, or copied from another "
                "row, in the store)"
            )
        if problems:
            advice = (
                ": add the missing keys to the keyring and run this again before dropping any key"
                if missing
                else ""
            )
            raise click.ClickException(
                f"values that did not open were left as they are ({'; '.join(problems)}){advice}"
            )

    return sealing


def _on_store(
    settings: Settings,
    work: Callable[[Keyring, SecretStore, SigningKeyStore, Profiles], Awaitable[Result]],
) -> tuple[Keyring, Result]:
    """`work` with the keyring and the stores of the (migrated, existing) metadata store."""
    from ecrd.metadata.database import Database
    from ecrd.metadata.secrets import SecretStore
    from ecrd.metadata.signing import SigningProfileStore
    from ecrd.metadata.signing_keys import SigningKeyStore
    from ecrd.sealing import KeyringInvalid, load_keyring
    from ecrd.startup import StartupError, check_keys_store

    try:
        check_keys_store(settings)
        keyring = load_keyring(settings, create=False)
    except (StartupError, KeyringInvalid) as error:
        raise click.ClickException(str(error)) from None

    async def run() -> Result:
        database = Database(settings.metadata_url)
        try:
            await database.migrate()
            return await work(
                keyring,
                SecretStore(database, keyring),
                SigningKeyStore(database, keyring),
                SigningProfileStore(database, keyring),
            )
        finally:
            await database.close()

    return keyring, asyncio.run(run())
