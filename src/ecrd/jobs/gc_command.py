"""`ecrd gc`: a garbage collection now, against the store the servers use, while they run.

    ecrd gc [--dry-run] [--grace SECONDS] [--delete-untagged] [--json]

It prints what it found and reclaimed (counts and bytes), with a progress bar when standard
error is a terminal. The scheduled `garbage_collection` job does the same with the settings'
grace window; the two may run at once (every deletion is decided in the database, see
metadata/garbage.py), and so may several servers.

cli.py adds it with `main.add_command(gc_command(store_options, _settings))`, for the reason
jobs/commands.py gives.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ecrd.jobs.commands import OptionsDecorator, with_services

if TYPE_CHECKING:
    from ecrd.registry.garbage import CollectionReport
    from ecrd.registry.services import RegistryServices
    from ecrd.settings import Settings


def gc_command(
    store_options: OptionsDecorator, load_settings: Callable[..., Settings]
) -> click.Command:
    @click.command("gc")
    @store_options
    @click.option("--dry-run", is_flag=True, help="Print what would go; change nothing.")
    @click.option(
        "--grace",
        type=click.IntRange(0, 365 * 86400),
        default=None,
        metavar="SECONDS",
        help="Keep what was used this recently (default: the gc_grace_seconds setting).",
    )
    @click.option(
        "--delete-untagged",
        is_flag=True,
        default=None,
        help="Also delete untagged images no manifest list names (default: the "
        "gc_delete_untagged setting).",
    )
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of lines.")
    def gc(
        config_file: Path | None,
        dry_run: bool,
        grace: int | None,
        delete_untagged: bool | None,
        as_json: bool,
        **flags: Any,
    ) -> None:
        """Delete blobs no repository can reach, and print what was reclaimed."""
        settings = load_settings(config_file, **flags)
        grace_seconds = settings.gc_grace_seconds if grace is None else grace
        untagged = settings.gc_delete_untagged if delete_untagged is None else delete_untagged
        show_progress = not as_json and sys.stderr.isatty()

        async def collect(services: RegistryServices) -> CollectionReport:
            if not show_progress:
                return await services.garbage.collect(grace_seconds, dry_run, untagged)
            estimate = await services.garbage.estimate(grace_seconds)
            with _ProgressBar(estimate.links, estimate.blobs) as progress:
                return await services.garbage.collect(
                    grace_seconds, dry_run, untagged, progress=progress.update
                )

        started = time.monotonic()
        report = with_services(settings, collect)
        seconds = time.monotonic() - started
        if as_json:
            body = {"dry_run": dry_run, "seconds": round(seconds, 3), **report.counts()}
            click.echo(json.dumps(body, indent=2))
            return
        for line in report_lines(report):
            click.echo(line)
        verb = "would reclaim" if dry_run else "reclaimed"
        click.echo(f"{verb} {byte_text(report.bytes_reclaimed)} in {seconds:.2f} s")

    return gc


def report_lines(report: CollectionReport) -> list[str]:
    verb = "would remove" if report.dry_run else "removed"
    lines = []
    if report.untagged_images:
        lines.append(f"untagged images {verb}: {report.untagged_images}")
    lines.append(f"unused repository links {verb}: {report.links}")
    lines.append(f"blobs {verb}: {report.blobs} ({byte_text(report.blob_bytes)})")
    lines.append(
        f"blob files with no record {verb}: {report.orphaned_blobs} "
        f"({byte_text(report.orphaned_bytes)})"
    )
    if not report.dry_run:
        lines.append(f"upload leftovers removed: {report.orphaned_uploads}")
        lines.append(f"abandoned blob assemblies removed: {report.abandoned_commits}")
    if report.failed:
        lines.append(f"blobs the store could not delete (kept for the next run): {report.failed}")
    return lines


def byte_text(size: int) -> str:
    """1536 -> "1.5 KiB"; exact bytes below 1 KiB."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


class _ProgressBar:
    """A bar on standard error over the links and blobs a collection removes (counted before
    it starts), rewritten in place; the other stages show their count beside it."""

    WIDTH = 30

    def __init__(self, links: int, blobs: int) -> None:
        self._offsets = {"links": 0, "blobs": links}
        self._total = max(links + blobs, 1)
        self._shown = 0.0

    def __enter__(self) -> _ProgressBar:
        return self

    def update(self, stage: str, done: int) -> None:
        now = time.monotonic()
        if now - self._shown < 0.1:
            return
        self._shown = now
        offset = self._offsets.get(stage)
        if offset is None:
            click.echo(f"\r\x1b[2Kcollecting {stage}: {done}", nl=False, err=True)
            return
        fraction = min((offset + done) / self._total, 1.0)
        filled = round(fraction * self.WIDTH)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        click.echo(f"\r\x1b[2K[{bar}] {fraction:4.0%} {stage}: {done}", nl=False, err=True)

    def __exit__(self, *_exception: object) -> None:
        if self._shown:
            click.echo("\r\x1b[2K", nl=False, err=True)
