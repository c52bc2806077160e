"""The `ecrd` command."""

from __future__ import annotations

from pathlib import Path

import click

from ecrd.settings import SettingsError, load_settings


@click.group()
@click.version_option(package_name="ecrd")
def main() -> None:
    """ecrd: an Amazon ECR and OCI Distribution registry."""


@main.command()
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path),
    default=None,
    help="TOML settings file (default: ./ecrd.toml when present).",
)
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to listen on (default 5000).")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder for blobs and the SQLite metadata (default ./ecrd-data).",
)
@click.option("--database-url", default=None, help="SQLAlchemy URL of the metadata store.")
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
def serve(config_file: Path | None, **flags: object) -> None:
    """Start the registry."""
    try:
        settings = load_settings(config_file, **flags)
        if (settings.tls_cert is None) != (settings.tls_key is None):
            raise SettingsError("invalid setting 'tls_key': tls_cert and tls_key go together")
    except SettingsError as error:
        raise click.ClickException(str(error)) from None
    from ecrd.server import serve as run_server

    run_server(settings)
