"""`ecrd lifecycle run`: apply the repositories' lifecycle policies now, from the command line,
against the store the servers use (the `lifecycle` job does the same on its schedule).

    ecrd lifecycle run [--repository NAME] [--registry-id ACCOUNT] [--region R] [--dry-run]

Every ECR repository with a policy, or those the options name. It prints one line per
repository (what was expired and transitioned) and one per image acted on; with --dry-run
it prints what a run would do and changes nothing. Exits non-zero when --repository names no
repository with a policy, or a repository could not be evaluated.

cli.py adds the group with `main.add_command(lifecycle_group(store_options, _settings))`,
made by a function of cli's option decorator and settings loader as `ecrd jobs` is (ecrd.cli
imports this module, so this one cannot import ecrd.cli). The store and services are imported
only when the command runs, so `ecrd --help` stays quick.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ecrd.jobs.commands import OptionsDecorator, with_services

if TYPE_CHECKING:
    from ecrd.registry.lifecycle import LifecycleRun, PlannedAction
    from ecrd.registry.services import RegistryServices
    from ecrd.settings import Settings

_ACCOUNT = re.compile(r"[0-9]{12}", re.ASCII)


def lifecycle_group(
    store_options: OptionsDecorator, load_settings: Callable[..., Settings]
) -> click.Group:
    """The `lifecycle` group, its commands taking the store options of every subcommand."""

    @click.group("lifecycle")
    def lifecycle() -> None:
        """Lifecycle policies: apply them now."""

    @lifecycle.command("run")
    @store_options
    @click.option("--repository", "repository_name", default=None, help="Only this repository.")
    @click.option(
        "--registry-id", "only_account", default=None, help="Only this account's registries."
    )
    # Named apart from the `account_id` and `region` settings: these narrow the run, they do
    # not set what the store's registries are (the settings reference tells them apart so).
    @click.option("--region", "only_region", default=None, help="Only registries of this region.")
    @click.option(
        "--dry-run", is_flag=True, help="Print what would be expired or archived; change nothing."
    )
    def run(
        config_file: Path | None,
        repository_name: str | None,
        only_account: str | None,
        only_region: str | None,
        dry_run: bool,
        **flags: Any,
    ) -> None:
        """Apply the lifecycle policies now; print what each did."""
        if only_account is not None and not _ACCOUNT.fullmatch(only_account):
            raise click.BadParameter("must be 12 digits", param_hint="--registry-id")
        settings = load_settings(config_file, **flags)

        async def work(services: RegistryServices) -> tuple[int, int]:
            from ecrd.registry.lifecycle import each_run

            count = failed = 0
            async for outcome in each_run(
                services, only_account, only_region, repository_name, dry_run
            ):
                count += 1
                failed += outcome.error is not None
                for line in _lines(outcome):
                    click.echo(line)
            return count, failed

        count, failed = with_services(settings, work)
        if count == 0:
            if repository_name is not None:
                raise click.ClickException(
                    f"no repository {repository_name!r} with a lifecycle policy"
                    + _where(only_account, only_region)
                )
            click.echo("no repository has a lifecycle policy" + _where(only_account, only_region))
        if failed:
            raise click.ClickException(
                f"{failed} of {count} repositories could not be evaluated (see above)"
            )

    return lifecycle


def _where(account_id: str | None, region: str | None) -> str:
    parts = []
    if account_id is not None:
        parts.append(f"account {account_id}")
    if region is not None:
        parts.append(f"region {region}")
    return f" in {', '.join(parts)}" if parts else ""


def _lines(outcome: LifecycleRun) -> list[str]:
    holder = outcome.holder
    where = f"{holder.account_id} {holder.region} {holder.repository.name}"
    if outcome.error is not None:
        return [f"{where}: not evaluated: {outcome.error}"]
    if outcome.dry_run:
        expiries, transitions = outcome.planned_expiries, outcome.planned_transitions
        lines = [
            f"{where}: would expire {len(expiries)}, would transition {len(transitions)} (dry run)"
        ]
        lines += [_image_line("would expire", action) for action in expiries]
        lines += [_image_line("would transition", action) for action in transitions]
        return lines
    lines = [f"{where}: expired {len(outcome.expired)}, transitioned {len(outcome.transitioned)}"]
    lines += [_image_line("expired", action) for action in outcome.expired]
    lines += [_image_line("transitioned", action) for action in outcome.transitioned]
    lines += [_image_line("not done", action) + f": {why}" for action, why in outcome.not_done]
    return lines


def _image_line(what: str, action: PlannedAction) -> str:
    tags = ",".join(action.image.tags) or "untagged"
    target = action.decision.target_storage_class
    to = f" to {target}" if action.decision.action == "TRANSITION" and target else ""
    return f"  {what} {action.image.digest}{to} ({tags}; rule {action.decision.rule_priority})"
