"""Typed settings, read once at start: CLI flags > ECRD_* variables > ecrd.toml > defaults.

An unknown key or a bad value stops the start with a one-line message naming it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_CONFIG_FILE = Path("ecrd.toml")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ECRD_", extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(5000, ge=0, le=65535)
    data_dir: Path = Path("ecrd-data")
    # SQLAlchemy URL of the metadata store; empty means SQLite in the data folder.
    database_url: str = ""
    account_id: str = Field("000000000000", pattern=r"^\d{12}$")
    region: str = Field("us-east-1", pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    tls_cert: Path | None = None
    tls_key: Path | None = None
    workers: int = Field(1, ge=1, le=64)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # A push to a repository that does not exist creates it (ECR's create-on-push).
    create_on_push: bool = True
    # How clients reach this server ("host[:port]"), for repositoryUri and proxyEndpoint.
    # Empty means the listening address, with "localhost" for a wildcard one.
    public_host: str = Field("", pattern=r"^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\])?(:\d{1,5})?$")
    # With a domain, each registry has its own host <account>.dkr.ecr.<region>.<domain>, as
    # on AWS, and the data plane picks the registry by the Host header.
    domain: str = Field("", pattern=r"^([a-z0-9-]+(\.[a-z0-9-]+)*)?$")
    # PutImage refuses manifests whose layers or child manifests are missing, as ECR does.
    # Off lets test suites written for mocks put fabricated manifests.
    strict_references: bool = True
    max_manifest_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    # Uploads left untouched this long are abandoned and may be removed.
    upload_expiry_seconds: int = Field(7 * 24 * 3600, ge=60)
    # ECR Public: where public repositories are served (host[:port]; empty: the public
    # address), and the alias of the default account's public registry (empty: derived).
    public_registry_host: str = Field(
        "", pattern=r"^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\])?(:\d{1,5})?$"
    )
    public_alias: str = Field("", pattern=r"^([a-z][a-z0-9]*(?:[._-][a-z0-9]+)*)?$", max_length=50)
    # "iam": SigV4 against stored keys, registry tokens, policies evaluated as IAM does.
    # "open": any well-formed signature and any registry login act as the default account's
    # root. For throwaway CI only; the server warns at start.
    auth_mode: Literal["iam", "open"] = "iam"
    # The root key of the default account, used instead of a generated one when the store
    # has no key yet (so scripts know the credentials in advance).
    bootstrap_access_key_id: str = Field("", pattern=r"^([A-Z0-9]{16,32})?$")
    # A SecretStr never shows its value in a repr, a dump or an error message.
    bootstrap_secret_access_key: SecretStr = SecretStr("")
    # The URL clients use to reach this server, when it differs from what it listens on: a
    # TLS-terminating proxy in front makes it https://. It sets the scheme and host of
    # repositoryUri, proxyEndpoint and the token realm (and replaces public_host).
    public_url: str = Field(
        "", pattern=r"^(https?://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\])(:\d{1,5})?)?$"
    )
    # A client must send its whole request head (line and headers) within this time.
    request_head_timeout_seconds: float = Field(20.0, gt=0, le=3600)
    # A request body that sends nothing for this long is dropped (its upload keeps the bytes
    # that arrived, so the client can resume).
    request_body_stall_seconds: float = Field(60.0, gt=0, le=3600)
    # Uploads open at once in one registry; past it, a new upload is refused until some
    # finish, are cancelled or expire.
    max_open_uploads: int = Field(1000, ge=1, le=1_000_000)
    # "text": one line per record for people; "json": one JSON object per line for machines.
    log_format: Literal["text", "json"] = "text"

    @model_validator(mode="after")
    def _one_public_address(self) -> Settings:
        if self.public_url and self.public_host:
            raise ValueError("public_url: give public_url or public_host, not both")
        return self

    @property
    def public_address(self) -> str:
        """host[:port] that clients use to reach the server."""
        if self.public_url:
            return self.public_url.partition("://")[2]
        if self.public_host:
            return self.public_host
        host = "localhost" if self.host in ("0.0.0.0", "::", "") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"{host}:{self.port}"

    @property
    def public_scheme(self) -> str:
        """The scheme clients use: public_url's, else https when ecrd itself serves TLS."""
        if self.public_url:
            return self.public_url.partition("://")[0]
        return "https" if self.tls_cert is not None else "http"

    @property
    def metadata_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'metadata.db').resolve()}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_file = _config_file_in_use
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)


_config_file_in_use: Path | None = None


class SettingsError(Exception):
    """A setting is unknown or has a bad value; the message is one line naming it."""


def load_settings(config_file: Path | None = None, **flags: Any) -> Settings:
    """Build Settings from flags (those not None), the environment and the TOML file."""
    global _config_file_in_use
    if config_file is None and DEFAULT_CONFIG_FILE.is_file():
        config_file = DEFAULT_CONFIG_FILE
    if config_file is not None and not config_file.is_file():
        raise SettingsError(f"config file {config_file} does not exist")
    _config_file_in_use = config_file
    for variable in os.environ:
        if variable.startswith("ECRD_"):
            key = variable.removeprefix("ECRD_").lower()
            if key not in Settings.model_fields:
                raise SettingsError(f"invalid setting {variable!r}: unknown setting")
    try:
        return Settings(**{key: value for key, value in flags.items() if value is not None})
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "settings"
        message = first["msg"]
        if not first["loc"] and first["type"] == "value_error":
            # A rule across settings names its setting first: "public_url: ...".
            key, _, message = message.removeprefix("Value error, ").partition(": ")
        if first["type"] == "extra_forbidden":
            message = "unknown setting"
        raise SettingsError(f"invalid setting {key!r}: {message}") from None
    except ValueError as error:  # a TOML file that does not parse
        raise SettingsError(f"cannot read {config_file}: {error}") from None
    finally:
        _config_file_in_use = None
