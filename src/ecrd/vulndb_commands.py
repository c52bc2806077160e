"""`ecrd vulndb import FILE_OR_DIR...`: load OSV advisories for the image scanner (no network
at scan time: the operator brings the database). Takes OSV JSON records: a `.json` file (one
record, or a list of them), a folder of them (read recursively), or a `.zip` of them as
https://osv.dev publishes each ecosystem (`<ecosystem>/all.zip`). A record loaded again
replaces the earlier one of its id. Prints how many records it loaded and skipped.

cli.py adds it with `main.add_command(vulndb_group(store_options, _settings))`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ecrd.jobs.commands import OptionsDecorator

if TYPE_CHECKING:
    from ecrd.settings import Settings

# Records written per transaction.
BATCH = 500
# A record larger than this is not an advisory ecrd can use.
MAX_RECORD_BYTES = 16 * 1024 * 1024


def _documents(paths: tuple[Path, ...]) -> Iterator[tuple[str, bytes]]:
    """(where, JSON bytes) of every record file under `paths`."""
    for path in paths:
        if path.is_dir():
            for file in sorted(path.rglob("*")):
                if file.is_file() and file.suffix in (".json", ".zip"):
                    yield from _documents((file,))
        elif path.suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                for info in archive.infolist():
                    if info.filename.endswith(".json") and info.file_size <= MAX_RECORD_BYTES:
                        yield f"{path}:{info.filename}", archive.read(info)
        elif path.stat().st_size <= MAX_RECORD_BYTES:
            yield str(path), path.read_bytes()


def _mapping(record: Any) -> dict[str, Any]:
    return record if isinstance(record, dict) else {}


def _records(data: bytes) -> list[Any]:
    document = json.loads(data)
    return document if isinstance(document, list) else [document]


def vulndb_group(
    store_options: OptionsDecorator, load_settings: Callable[..., Settings]
) -> click.Group:
    @click.group("vulndb")
    def vulndb() -> None:
        """The vulnerability advisories image scans match against."""

    @vulndb.command("import")
    @click.argument(
        "sources", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path)
    )
    @store_options
    def import_command(sources: tuple[Path, ...], config_file: Path | None, **flags: Any) -> None:
        """Load OSV advisories from FILE_OR_DIR (files, folders, .zip archives)."""
        from ecrd.metadata.database import Database
        from ecrd.metadata.image_scans import VulnerabilityStore
        from ecrd.metadata.records import utcnow
        from ecrd.scanning.osv import RecordInvalid, parse_record

        settings = load_settings(config_file, **flags)
        documents = list(_documents(sources))

        async def run() -> tuple[int, int]:
            database = Database(settings.metadata_url)
            loaded = skipped = 0
            try:
                await database.migrate()
                store = VulnerabilityStore(database)
                # One time for the whole import: it is what scans' vulnerabilitySourceUpdatedAt
                # shows, and what continuous scans compare with.
                imported_at = utcnow()
                batch = []
                # On stderr, so that stdout is only the summary; shown on a terminal only.
                progress: Any = click.progressbar(
                    documents, label="importing advisories", file=sys.stderr
                )
                with progress as bar:
                    for _where, data in bar:
                        try:
                            records = _records(data)
                        except (ValueError, RecursionError):
                            skipped += 1
                            continue
                        for record in records:
                            try:
                                batch.append(
                                    parse_record(record if isinstance(record, dict) else {})
                                )
                            except RecordInvalid:
                                skipped += 1
                        if len(batch) >= BATCH:
                            await store.put_many(batch, imported_at)
                            loaded += len(batch)
                            batch = []
                    if batch:
                        await store.put_many(batch, imported_at)
                        loaded += len(batch)
            finally:
                await database.close()
            return loaded, skipped

        loaded, skipped = asyncio.run(run())
        click.echo(f"loaded {loaded} advisories; skipped {skipped} that are not OSV records")

    return vulndb
