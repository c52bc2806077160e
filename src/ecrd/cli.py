"""The `ecrd` command."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ecrd.jobs.commands import jobs_group
from ecrd.jobs.gc_command import gc_command
from ecrd.lifecycle.commands import lifecycle_group
from ecrd.sealing_commands import sealing_group
from ecrd.settings import Settings, SettingsError, load_settings
from ecrd.signing_commands import signing_group
from ecrd.vulndb_commands import vulndb_group

# The metadata store is imported only by the commands that use it, so `ecrd --help` and
# `ecrd serve --help` stay quick.
if TYPE_CHECKING:
    from ecrd.metadata.identities import IdentityStore

Command = TypeVar("Command", bound=Callable[..., Any])


def store_options(command: Command) -> Command:
    """The options that say where the metadata store is, shared by every subcommand."""
    for option in reversed(
        [
            click.option(
                "--config",
                "config_file",
                type=click.Path(path_type=Path),
                default=None,
                help="TOML settings file (default: ./ecrd.toml when present).",
            ),
            click.option(
                "--data-dir",
                type=click.Path(path_type=Path),
                default=None,
                help="Folder for blobs and the SQLite metadata (default ./ecrd-data).",
            ),
            click.option(
                "--database-url",
                default=None,
                help="Metadata store: sqlite:///PATH or postgresql://USER@HOST[:PORT]/DATABASE "
                "(default: SQLite in the data folder).",
            ),
        ]
    ):
        command = option(command)
    return command


def _settings(config_file: Path | None, **flags: Any) -> Settings:
    try:
        return load_settings(config_file, **flags)
    except SettingsError as error:
        raise click.ClickException(str(error)) from None


@click.group()
@click.version_option(package_name="ecrd")
def main() -> None:
    """ecrd: an Amazon ECR and OCI Distribution registry."""


@main.command()
@store_options
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to listen on (default 5000).")
@click.option(
    "--tls-cert",
    type=click.Path(path_type=Path),
    default=None,
    help="PEM certificate: serve HTTPS.",
)
@click.option(
    "--tls-key",
    type=click.Path(path_type=Path),
    default=None,
    help="PEM private key for --tls-cert.",
)
@click.option("--workers", type=int, default=None, help="Server processes (default 1).")
@click.option("--log-level", default=None, help="debug, info, warning or error.")
@click.option("--log-format", default=None, help="text (default) or json: one object a line.")
def serve(config_file: Path | None, **flags: object) -> None:
    """Start the registry."""
    settings = _settings(config_file, **flags)
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise click.ClickException("invalid setting 'tls_key': tls_cert and tls_key go together")
    from ecrd.startup import StartupError, check_before_serving

    # A start that cannot work is refused before the server and the app are imported (a
    # second of a refused start's time); `run_server` checks again, cheaply.
    try:
        check_before_serving(settings)
    except (StartupError, ValueError, OSError) as error:
        raise SystemExit(f"ecrd: {error}") from None
    from ecrd.server import serve as run_server

    run_server(settings)


@main.group()
def keys() -> None:
    """Access keys for the ECR API (and through it, registry logins)."""


@keys.command("create")
@store_options
@click.option(
    "--account", default=None, help="12-digit account id (default: the configured account)."
)
@click.option("--user", "user_name", default=None, help="IAM user name; omit for a root key.")
@click.option(
    "--policy",
    "policy_files",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    multiple=True,
    help="Identity policy (IAM JSON) for the user; may repeat. Replaces the user's policies.",
)
def create_key(
    config_file: Path | None,
    account: str | None,
    user_name: str | None,
    policy_files: tuple[Path, ...],
    **flags: Any,
) -> None:
    """Create a key and print it; the secret is shown only this once."""
    from ecrd.auth import keys as access_keys
    from ecrd.errors import PolicyInvalid
    from ecrd.registry.policies import check_identity_policy

    settings = _settings(config_file, **flags)
    account_id = account or settings.account_id
    if not access_keys.ACCOUNT_PATTERN.fullmatch(account_id):
        raise click.BadParameter("must be 12 digits", param_hint="--account")
    if user_name is not None and not access_keys.USER_NAME_PATTERN.fullmatch(user_name):
        raise click.BadParameter(
            "1 to 64 characters of letters, digits and + = , . @ _ -", param_hint="--user"
        )
    if policy_files and user_name is None:
        raise click.BadParameter("policies attach to a user: give --user", param_hint="--policy")
    policies = []
    for path in policy_files:
        try:
            policies.append(check_identity_policy(path.read_text()))
        except PolicyInvalid as error:
            raise click.BadParameter(f"{path}: {error.message}", param_hint="--policy") from None
    key = access_keys.new_key()

    async def work(store: IdentityStore) -> None:
        await store.create_key(
            key.access_key_id,
            key.secret_access_key,
            account_id,
            user_name,
            policies if policy_files else None,
        )

    _with_identities(settings, work)
    click.echo(
        json.dumps(
            {
                "AccessKeyId": key.access_key_id,
                "SecretAccessKey": key.secret_access_key,
                "Account": account_id,
                "Arn": _arn(account_id, user_name),
            },
            indent=2,
        )
    )


@keys.command("list")
@store_options
def list_keys(config_file: Path | None, **flags: Any) -> None:
    """List keys (never their secrets)."""
    settings = _settings(config_file, **flags)
    found: list[Any] = []

    async def work(store: IdentityStore) -> None:
        found.extend(await store.keys())

    _with_identities(settings, work)
    for key in found:
        click.echo(
            f"{key.access_key_id}  {key.account_id}  {_arn(key.account_id, key.user_name)}  "
            f"{key.created_at:%Y-%m-%dT%H:%M:%SZ}"
        )


@keys.command("delete")
@store_options
@click.argument("access_key_id")
def delete_key(config_file: Path | None, access_key_id: str, **flags: Any) -> None:
    """Delete a key; tokens issued to its user stop working with the user's last key."""
    settings = _settings(config_file, **flags)
    deleted: list[bool] = []

    async def work(store: IdentityStore) -> None:
        deleted.append(await store.delete_key(access_key_id))

    _with_identities(settings, work)
    if not deleted[0]:
        raise click.ClickException(f"no access key {access_key_id}")
    click.echo(f"deleted {access_key_id}")


def _arn(account_id: str, user_name: str | None) -> str:
    from ecrd.auth.principals import root_arn, user_arn

    return root_arn(account_id) if user_name is None else user_arn(account_id, user_name)


def _with_identities(settings: Settings, work: Callable[[IdentityStore], Awaitable[None]]) -> None:
    """Run `work(IdentityStore)` against the (migrated) metadata store, which must exist."""
    from ecrd.metadata.database import Database
    from ecrd.metadata.identities import IdentityStore
    from ecrd.startup import StartupError, check_keys_store

    try:
        check_keys_store(settings)
    except StartupError as error:
        raise SystemExit(f"ecrd: {error}") from None

    async def run() -> None:
        database = Database(settings.metadata_url)
        try:
            await database.migrate()
            await work(IdentityStore(database))
        finally:
            await database.close()

    asyncio.run(run())


main.add_command(jobs_group(store_options, _settings))
main.add_command(gc_command(store_options, _settings))
main.add_command(lifecycle_group(store_options, _settings))
main.add_command(sealing_group(store_options, _settings))
main.add_command(signing_group(store_options, _settings))
main.add_command(vulndb_group(store_options, _settings))
