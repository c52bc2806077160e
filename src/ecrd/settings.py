"""Typed settings, read once at start: CLI flags > ECRD_* variables > ecrd.toml > defaults.

An unknown key or a bad value stops the start with a one-line message naming it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_CONFIG_FILE = Path("ecrd.toml")
# The form of an AWS secret access key.
_BOOTSTRAP_SECRET = re.compile(r"[A-Za-z0-9/+=]{16,64}")
# A host (a name or a bracketed IPv6 address) and a port, for the address settings.
_HOST = r"([A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\])"
_PORT = r"(:\d{1,5})"


# A replication destination as rules name it: `<registryId>/<region>`.
_DESTINATION = re.compile(r"\d{12}/[0-9a-z-]{2,25}")


class ReplicationRemote(BaseModel):
    """Another installation a replication destination is: where to push, and with what key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(pattern=r"^https?://[^\s/]+(/.*)?$")
    access_key_id: str = Field(min_length=16, max_length=128)
    # A SecretStr never shows its value in a repr, a dump or an error message.
    secret_access_key: SecretStr
    # The accounts whose registries may replicate with this key (empty: only the
    # destination's own account), so that one tenant cannot push with another's key.
    source_accounts: tuple[str, ...] = ()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ECRD_", extra="forbid", frozen=True)

    # Each description is the setting's entry in docs/settings.md (`python -m
    # ecrd.settings_reference`), so it says what the setting means to someone running ecrd.
    host: str = Field(
        "127.0.0.1",
        description="Address to listen on. `0.0.0.0` (or `::`) listens on every interface.",
    )
    port: int = Field(
        5000,
        ge=0,
        le=65535,
        description="TCP port to listen on, for the OCI Distribution API, both ECR APIs and the "
        "gallery alike.",
    )
    data_dir: Path = Field(
        Path("ecrd-data"),
        description="Folder for blobs, uploads in progress, the registry token key and (unless "
        "`database_url` is set) the SQLite metadata store `metadata.db`. The server makes it at "
        "its first start; `ecrd keys` needs it to exist.",
    )
    database_url: str = Field(
        "",
        description="URL of the metadata store: `sqlite:///PATH`, or "
        "`postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE` (`postgres://` and "
        "`postgresql+asyncpg://` mean the same; all use asyncpg). Empty means SQLite in the "
        "data folder. The server does not start when the database does not answer within "
        "5 seconds.",
    )
    account_id: str = Field(
        "000000000000",
        pattern=r"^\d{12}$",
        description="The default account: it owns the root key made at the first start, "
        '`auth_mode = "open"` acts as its root, and `/v2/` serves its registry on hosts '
        "that name no other.",
    )
    region: str = Field(
        "us-east-1",
        pattern=r"^[a-z]{2}(-[a-z]+)+-\d$",
        description="Region of the default account's registry on `/v2/` (API calls use the "
        "region they are signed for).",
    )
    tls_cert: Path | None = Field(
        None,
        description="PEM certificate (chain) file: with `tls_key`, the server speaks HTTPS "
        "itself. Unset: plain HTTP.",
    )
    tls_key: Path | None = Field(
        None, description="PEM private key file of `tls_cert`, not encrypted."
    )
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="Server processes sharing the port; each runs its own event loop.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Least severe level of the log records written."
    )
    create_on_push: bool = Field(
        True,
        description="A push to a repository that does not exist creates it, with ECR's "
        "defaults unless a CREATE_ON_PUSH repository creation template covers its name (then "
        "with the template's settings and policies). Off, as on ECR: only a name such a "
        "template covers is created; a push to any other unknown repository fails.",
    )
    public_host: str = Field(
        "",
        pattern=rf"^{_HOST}?{_PORT}?$",
        description="How clients reach this server (`host[:port]`), for `repositoryUri` and "
        "`proxyEndpoint`. Empty means the listening address, with `localhost` for a wildcard "
        "one.",
    )
    domain: str = Field(
        "",
        pattern=r"^([a-z0-9-]+(\.[a-z0-9-]+)*)?$",
        description="With a domain, each registry has its own host "
        "`<account>.dkr.ecr.<region>.<domain>`, as on AWS, and `/v2/` picks the registry by "
        "the Host header. Empty: every registry shares the public address.",
    )
    strict_references: bool = Field(
        True,
        description="PutImage refuses manifests whose layers or child manifests are missing, "
        "as ECR does, and `/v2/` refuses them too (the default). Off lets test suites written "
        "for mocks put made-up manifests, on both.",
    )
    max_manifest_bytes: int = Field(
        4 * 1024 * 1024,
        ge=1024,
        description="Largest manifest accepted, in bytes (4 MiB).",
    )
    upload_expiry_seconds: int = Field(
        7 * 24 * 3600,
        ge=60,
        description="Uploads left untouched this long (7 days) are abandoned; an hourly sweep "
        "removes them.",
    )
    public_registry_host: str = Field(
        "",
        pattern=rf"^{_HOST}?{_PORT}?$",
        description="ECR Public: the host (`host[:port]`) where public repositories are served "
        "as `<host>/<alias>/<name>`, with a Bearer token endpoint as on `public.ecr.aws`. "
        "Empty: they share the public address, told apart by the alias.",
    )
    public_alias: str = Field(
        "",
        pattern=r"^([a-z][a-z0-9]*(?:[._-][a-z0-9]+)*)?$",
        max_length=50,
        description="ECR Public: the alias of the default account's public registry. Empty: "
        "one derived from the account id.",
    )
    auth_mode: Literal["iam", "open"] = Field(
        "iam",
        description="`iam`: SigV4 against stored keys, registry tokens, and policies evaluated "
        "as IAM does. `open`: any well-formed signature and any registry login act as the "
        "default account's root; for throwaway CI only, and the server warns at start.",
    )
    bootstrap_access_key_id: str = Field(
        "",
        pattern=r"^([A-Z0-9]{16,32})?$",
        description="The default account's root key id, used instead of a generated one and "
        "added at any start where it is missing, so that scripts know the credentials in "
        "advance. Goes with `bootstrap_secret_access_key`.",
    )
    # A SecretStr never shows its value in a repr, a dump or an error message.
    bootstrap_secret_access_key: SecretStr = Field(
        SecretStr(""),
        description="The secret of `bootstrap_access_key_id`: 16 to 64 characters of "
        "`A-Z a-z 0-9 / + =`.",
    )
    public_url: str = Field(
        "",
        pattern=rf"^(https?://{_HOST}{_PORT}?)?$",
        description="The URL clients use to reach this server when it differs from what it "
        "listens on, e.g. `https://` behind a TLS-terminating proxy. It sets the scheme and "
        "host of `repositoryUri`, `proxyEndpoint` and the token realm, in place of "
        "`public_host` (give one or the other).",
    )
    request_head_timeout_seconds: float = Field(
        20.0,
        gt=0,
        le=3600,
        description="A client must send its whole request head (request line and headers) "
        "within this time, counted from the connection's opening or the request's first byte; "
        "else the answer is 408 and the connection is closed.",
    )
    request_body_stall_seconds: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="A request body that sends nothing for this long is dropped; an upload "
        "keeps the bytes that arrived, so the client can resume.",
    )
    max_open_uploads: int = Field(
        1000,
        ge=1,
        le=1_000_000,
        description="Uploads open at once in one registry; past it a new upload is refused "
        "until some finish, are cancelled or expire.",
    )
    blob_store: Literal["filesystem", "s3"] = Field(
        "filesystem",
        description="Where blob bytes live: `filesystem` (under `data_dir`) or `s3` (a bucket "
        "of Amazon S3 or of any S3-compatible store, which several ecrd processes can share; "
        "see docs/scale-out.md).",
    )
    s3_bucket: str = Field(
        "",
        pattern=r"^([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])?$",
        description='With `blob_store = "s3"`: the bucket (it must exist). Credentials come '
        "from the standard AWS chain: `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`, "
        "`AWS_PROFILE` and the shared files, or an instance role.",
    )
    s3_prefix: str = Field(
        "",
        pattern=r"^([A-Za-z0-9!_.*'()-]+/)*$",
        max_length=512,
        description="Key prefix for everything ecrd keeps in the bucket, ending in `/` "
        "(`ecrd/`), so that one bucket can hold several installations. Empty: the bucket's "
        "root.",
    )
    s3_region: str = Field(
        "us-east-1",
        pattern=r"^[a-z]{2}(-[a-z]+)+-\d$",
        description="The bucket's region (S3-compatible servers mostly take any).",
    )
    s3_endpoint_url: str = Field(
        "",
        pattern=rf"^(https?://{_HOST}{_PORT}?/?)?$",
        description="URL of an S3-compatible server (MinIO, Ceph, moto, ...), which ecrd then "
        "addresses with path-style URLs. Empty: Amazon S3.",
    )
    s3_redirect: bool = Field(
        True,
        description="With S3, a blob GET answers 307 with a presigned URL of the object, so "
        "that clients fetch the bytes from the bucket (as CNCF Distribution's `redirect` "
        "option); clients must reach the bucket's address. Off: ecrd streams the bytes "
        "itself. HEAD, and every size, come from the metadata store either way.",
    )
    signing_key_rotation_days: int = Field(
        30,
        ge=1,
        le=3650,
        description="A new key signs registry tokens and download URLs once the newest is this "
        "old; the replaced key still verifies until every token it signed has expired (13 "
        "hours). Keys live in the metadata store, shared by every process.",
    )
    # A SecretStr: the keys never show in a repr, a settings dump or an error message.
    sealing_keys: SecretStr = Field(
        SecretStr(""),
        description="The keys that seal secret values (the Secrets Manager API) and the token "
        "signing keys in the metadata store: comma-separated, each `<id>:<base64 of 32 "
        "bytes>` (`ecrd sealing new-key` prints one). The first seals, every one opens what it "
        "sealed. Set, it is used instead of the key file; every process sharing a PostgreSQL "
        "store needs the same keys (`ECRD_SEALING_KEYS`). See docs/secrets.md.",
    )
    sealing_key_file: Path | None = Field(
        None,
        description="The file of sealing keys when `sealing_keys` is empty: one key a line in "
        "the same form, the first sealing, `#` comments. Unset: `sealing.keys` in the data "
        "folder, which the first start makes (one new key, readable by its owner only).",
    )
    gc_grace_seconds: int = Field(
        2 * 3600,
        ge=0,
        le=365 * 86400,
        description="The garbage collector deletes a blob only once no repository has used "
        "it for this long (2 hours, as Harbor): a blob uploaded, or its last image deleted, "
        "within the window is kept, so that a push that found it present can still use it.",
    )
    gc_interval_seconds: int = Field(
        3600,
        ge=60,
        description="How often the garbage collector runs in the server (`ecrd gc` runs it now).",
    )
    gc_delete_untagged: bool = Field(
        False,
        description="Also delete untagged images that no manifest list names, once pushed "
        "longer ago than the grace window (CNCF Distribution's `--delete-untagged`). Off: "
        "untagged images stay until a lifecycle policy expires them, as in ECR.",
    )
    lifecycle_interval_seconds: int = Field(
        3600,
        ge=60,
        description="How often the server applies every repository's lifecycle policy (ECR "
        "does within 24 hours; `ecrd lifecycle run` applies them now).",
    )
    archive_restore_seconds: int = Field(
        60,
        ge=0,
        le=86400,
        description="How long an archived image stays ACTIVATING after a restore to STANDARD "
        "before it can be pulled again (ECR takes up to 20 minutes).",
    )
    upstream_endpoints: dict[str, str] = Field(
        {},
        description="Where ecrd really reaches the upstream registries of pull-through cache "
        "rules: a table of upstream host (as a rule names it: `registry-1.docker.io`, "
        "`ghcr.io`, `<account>.dkr.ecr.<region>.amazonaws.com`) to base URL "
        "(`https://mirror.internal:5000`, `http://127.0.0.1:5001`), for an internal mirror or "
        "an air-gapped installation. A host not in the table is reached at `https://<host>`. "
        'In the environment: a JSON object (`ECRD_UPSTREAM_ENDPOINTS=\'{"ghcr.io": '
        '"http://127.0.0.1:5001"}\'`).',
    )
    pull_through_refresh_seconds: int = Field(
        86400,
        ge=0,
        le=365 * 86400,
        description="How long a tag cached from an upstream is served before a pull checks it "
        "upstream again (ECR: at least once every 24 hours). While the upstream is out of "
        "reach, the cached image is served and checked again after this long.",
    )
    replication_remotes: dict[str, ReplicationRemote] = Field(
        {},
        description="Replication destinations that are other installations (another ecrd, or "
        "an ECR registry): a table of destination as replication rules name it, "
        "`<registryId>/<region>`, to the `url` its registry protocol and API answer at and "
        "the `access_key_id` / `secret_access_key` to push with (ecrd logs in with "
        "GetAuthorizationToken, as `docker login` with an ECR token does), and optionally "
        "`source_accounts`: the accounts whose rules may use it (by default only the "
        "destination's own account, so another tenant cannot push with the key). Images go "
        "over the OCI push protocol, deletes too where deleteReplication is on. A destination "
        "not in "
        "the table is a registry of this installation. In the environment: a JSON object "
        '(`ECRD_REPLICATION_REMOTES=\'{"111122223333/eu-west-1": {"url": '
        '"https://ecrd.eu.internal", "access_key_id": "...", "secret_access_key": "..."}}\'`).',
    )
    scan_concurrency: int = Field(
        2,
        ge=1,
        le=64,
        description="How many images a process scans at once (each streams its layers "
        "through a temporary file and reads them in a worker thread).",
    )
    job_poll_seconds: float = Field(
        5.0,
        ge=0.1,
        le=300,
        description="How often each process looks for background jobs that are due (the "
        "schedule rows in the metadata store); a due job starts within this long.",
    )
    replication_interval_seconds: float = Field(
        10.0,
        ge=0.1,
        le=3600,
        description="How often the replication job looks for queued images in the server; a "
        "push that a replication rule covers also starts it at once in the process that took "
        "the push (`ecrd jobs run replication` runs it now).",
    )
    test_hooks: bool = Field(
        False,
        description="For tests only: lets anyone who reaches the server set an image's push, "
        "pull and archive times (`POST /_ecrd/test/image-times`), so that lifecycle rules "
        "counted in days can be tested without waiting. Off (the route answers 404) unless "
        "set; never turn it on outside tests.",
    )
    log_format: Literal["text", "json"] = Field(
        "text",
        description="`text`: one line per record, for people. `json`: one JSON object per "
        "line, for machines.",
    )

    @model_validator(mode="after")
    def _remote_destinations(self) -> Settings:
        for destination in self.replication_remotes:
            if not _DESTINATION.fullmatch(destination):
                raise ValueError(
                    f"replication_remotes: {destination[:80]!r} is not <registryId>/<region> "
                    "(12 digits, a slash, a region)"
                )
        return self

    @model_validator(mode="after")
    def _one_public_address(self) -> Settings:
        if self.public_url and self.public_host:
            raise ValueError("public_url: give public_url or public_host, not both")
        return self

    @model_validator(mode="after")
    def _bucket_for_s3(self) -> Settings:
        if self.blob_store == "s3" and not self.s3_bucket:
            raise ValueError('s3_bucket: needed with blob_store = "s3"')
        return self

    @model_validator(mode="after")
    def _bootstrap_pair(self) -> Settings:
        # Checked here, not when the key is stored, so that a bad pair stops the start before
        # a data folder or store is made. The message never holds the secret.
        secret = self.bootstrap_secret_access_key.get_secret_value()
        if self.bootstrap_access_key_id and not secret:
            raise ValueError("bootstrap_secret_access_key: needed with bootstrap_access_key_id")
        if secret and not self.bootstrap_access_key_id:
            raise ValueError("bootstrap_access_key_id: needed with bootstrap_secret_access_key")
        if secret and not _BOOTSTRAP_SECRET.fullmatch(secret):
            raise ValueError(
                "bootstrap_secret_access_key: must be 16 to 64 characters of A-Z a-z 0-9 / + ="
            )
        return self

    @model_validator(mode="after")
    def _sealing_keys_form(self) -> Settings:
        # Checked here so that a malformed key stops the start with one line (never the key).
        from ecrd.sealing import KeyringInvalid, parse_keys

        keys = self.sealing_keys.get_secret_value()
        if keys.strip():
            try:
                parse_keys(keys, "sealing_keys")
            except KeyringInvalid as error:
                raise ValueError(str(error)) from None
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
