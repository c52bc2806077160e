"""`ecrd signing`: the signing profiles whose keys ecrd signs images with (managed signing,
docs/signing.md). ECR signs with AWS Signer profiles; ecrd holds a key per profile ARN itself,
sealed at rest with the keyring like secret values.

    ecrd signing create-profile ARN [--key-type ecdsa-p256|ecdsa-p384|rsa-3072]
                                    a new key and self-signed code-signing certificate; prints
                                    the certificate (PEM) for verifiers' trust stores
    ecrd signing list               the profiles: ARN, key type, certificate thumbprint, created
    ecrd signing certificate ARN    print a profile's certificate (PEM)
    ecrd signing delete-profile ARN images covered by its rules then fail to sign

cli.py adds the group with `main.add_command(signing_group(store_options, _settings))`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ecrd.jobs.commands import OptionsDecorator

if TYPE_CHECKING:
    from ecrd.metadata.signing import SigningProfileStore
    from ecrd.settings import Settings

Result = TypeVar("Result")
# The model's pattern for a signing profile ARN.
PROFILE_ARN = re.compile(
    r"arn:aws(-[a-z]+)*:signer:[a-z0-9-]+:[0-9]{12}:/signing-profiles/[a-zA-Z0-9_]{2,}"
)


def signing_group(
    store_options: OptionsDecorator, load_settings: Callable[..., Settings]
) -> click.Group:
    @click.group("signing")
    def signing() -> None:
        """The signing profiles ecrd signs images with."""

    @signing.command("create-profile")
    @click.argument("arn")
    @click.option(
        "--key-type",
        type=click.Choice(["ecdsa-p256", "ecdsa-p384", "rsa-3072"]),
        default="ecdsa-p256",
        show_default=True,
    )
    @store_options
    def create_profile(arn: str, key_type: str, config_file: Path | None, **flags: Any) -> None:
        """Make a key and a self-signed certificate for signing profile ARN."""
        from ecrd.registry.signing import new_profile_key

        if len(arn) > 200 or not PROFILE_ARN.fullmatch(arn):
            raise click.BadParameter(
                "not a signing profile ARN (arn:aws:signer:<region>:<account>:/signing-profiles/"
                "<name>)",
                param_hint="ARN",
            )
        private_key, certificate = new_profile_key(arn, key_type)

        async def work(profiles: SigningProfileStore) -> bool:
            return await profiles.create(arn, key_type, private_key, certificate)

        if not _on_store(load_settings(config_file, **flags), work):
            raise click.ClickException(f"signing profile {arn} exists already")
        click.echo(certificate, nl=False)

    @signing.command("list")
    @store_options
    def list_profiles(config_file: Path | None, **flags: Any) -> None:
        """The signing profiles ecrd holds keys for."""
        from ecrd.registry.signing import certificate_thumbprint

        async def work(profiles: SigningProfileStore) -> list[Any]:
            return await profiles.summaries()

        for profile in _on_store(load_settings(config_file, **flags), work):
            click.echo(
                f"{profile.arn}  {profile.key_type}  "
                f"sha256:{certificate_thumbprint(profile.certificate_pem)}  "
                f"{profile.created_at:%Y-%m-%dT%H:%M:%SZ}"
            )

    @signing.command("certificate")
    @click.argument("arn")
    @store_options
    def certificate(arn: str, config_file: Path | None, **flags: Any) -> None:
        """Print the certificate (PEM) of signing profile ARN."""

        async def work(profiles: SigningProfileStore) -> str | None:
            for profile in await profiles.summaries():
                if profile.arn == arn:
                    return profile.certificate_pem
            return None

        found = _on_store(load_settings(config_file, **flags), work)
        if found is None:
            raise click.ClickException(f"no signing profile {arn}")
        click.echo(found, nl=False)

    @signing.command("delete-profile")
    @click.argument("arn")
    @store_options
    def delete_profile(arn: str, config_file: Path | None, **flags: Any) -> None:
        """Delete signing profile ARN and its key."""

        async def work(profiles: SigningProfileStore) -> bool:
            return await profiles.delete(arn)

        if not _on_store(load_settings(config_file, **flags), work):
            raise click.ClickException(f"no signing profile {arn}")
        click.echo(f"deleted {arn}")

    return signing


def _on_store(
    settings: Settings, work: Callable[[SigningProfileStore], Awaitable[Result]]
) -> Result:
    """`work` with the profile store of the (migrated) metadata store and its keyring."""
    from ecrd.metadata.database import Database
    from ecrd.metadata.signing import SigningProfileStore
    from ecrd.sealing import KeyringInvalid, load_keyring
    from ecrd.startup import StartupError, check_keys_store

    try:
        check_keys_store(settings)
        keyring = load_keyring(settings, create=True)
    except (StartupError, KeyringInvalid) as error:
        raise click.ClickException(str(error)) from None

    async def run() -> Result:
        database = Database(settings.metadata_url)
        try:
            await database.migrate()
            return await work(SigningProfileStore(database, keyring))
        finally:
            await database.close()

    return asyncio.run(run())
