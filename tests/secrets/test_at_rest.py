"""Secret values and signing keys at rest: sealed in the metadata store under keys it never
holds, bound to their rows; a server with other keys answers errors, not 500s; a rotation (new
key first, `ecrd sealing reseal`, old key dropped) keeps everything readable; signing keys
stored before sealing are sealed at the next start and by the re-seal.

One server for the module (restarted by the tests that change its keys, which put them back).
"""

from __future__ import annotations

import asyncio
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from ecrd.auth.tokens import TokenIssuer
from ecrd.cli import main as ecrd_command
from ecrd.sealing import key_id_of, new_key
from tests.api_errors import expect_error
from tests.conftest import ACCOUNT_ID, REGION, EcrdServer
from tests.secrets.conftest import metadata_write, unique_name


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EcrdServer]:
    server = EcrdServer(tmp_path_factory.mktemp("sealed") / "data")
    server.start()
    yield server
    server.stop()


def secrets_of(server: EcrdServer) -> Any:
    return server.ecr("secretsmanager")


def stored_values(server: EcrdServer, arn: str) -> list[str]:
    rows = server.metadata_query(
        "SELECT v.sealed_value FROM secret_versions v JOIN secrets s ON s.id = v.secret_id "
        "WHERE s.arn = :arn",
        arn=arn,
    )
    return [row[0] for row in rows]


def signing_rows(server: EcrdServer) -> list[tuple[Any, ...]]:
    return server.metadata_query(
        "SELECT generation, secret_hex, secret_sealed FROM signing_keys ORDER BY generation"
    )


def registry_login(server: EcrdServer, password: str) -> int:
    return httpx.get(f"{server.url}/v2/", auth=("AWS", password), timeout=30).status_code


def test_values_are_sealed_in_the_store_and_never_written_plain(sealed: EcrdServer) -> None:
    secrets = secrets_of(sealed)
    text = "plain-text-that-must-not-be-stored-0451"
    data = b"binary-that-must-not-be-stored-0452"
    created = secrets.create_secret(Name=unique_name(), SecretString=text)
    binary = secrets.create_secret(Name=unique_name(), SecretBinary=data)
    primary = sealed.keyring().primary_id
    for arn, plain in ((created["ARN"], text.encode()), (binary["ARN"], data)):
        (value,) = stored_values(sealed, arn)
        assert key_id_of(value) == primary
        assert plain.decode() not in value
    # not in any column of the rows, nor in SQLite's files (the database and its log)
    rows = sealed.metadata_query("SELECT * FROM secret_versions")
    assert not any(text in str(column) for row in rows for column in row)
    if sealed.database_url is None:
        for path in sealed.data_dir.glob("metadata.db*"):
            contents = path.read_bytes()
            assert text.encode() not in contents and data not in contents, path
    # the key lives beside the store, readable by its owner only, and never in it
    key_file = sealed.data_dir / "sealing.keys"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key_text = key_file.read_text().strip().splitlines()[-1].split(":", 1)[1]
    dump = sealed.metadata_query("SELECT secret_sealed FROM signing_keys") + rows
    assert not any(key_text in str(column) for row in dump for column in row)
    assert secrets.get_secret_value(SecretId=created["ARN"])["SecretString"] == text
    assert text not in sealed.log_path.read_text()


def test_a_sealed_value_copied_to_another_secret_does_not_open(sealed: EcrdServer) -> None:
    secrets = secrets_of(sealed)
    first = secrets.create_secret(Name=unique_name(), SecretString="first's value")
    second = secrets.create_secret(Name=unique_name(), SecretString="second's value")
    (first_value,) = stored_values(sealed, first["ARN"])
    # when someone with write access to the store copies the first's sealed value over the
    # second's
    changed = metadata_write(
        sealed,
        "UPDATE secret_versions SET sealed_value = :value WHERE version_id = :version",
        value=first_value,
        version=second["VersionId"],
    )
    assert changed == 1
    # then it does not open as the second's (it is bound to the first's ARN and version)
    message = expect_error("DecryptionFailure", secrets.get_secret_value, SecretId=second["ARN"])
    assert "first's value" not in message
    assert secrets.get_secret_value(SecretId=first["ARN"])["SecretString"] == "first's value"
    # the re-seal counts it, and names it as altered rather than as a missing key
    resealed = sealed.ecrd_command("sealing", "reseal")
    assert resealed.returncode != 0
    assert "1 that do not open with their key" in resealed.stderr, resealed.stderr
    secrets.delete_secret(SecretId=second["ARN"], ForceDeleteWithoutRecovery=True)


def test_signing_keys_are_sealed_and_tokens_verify_across_a_restart(sealed: EcrdServer) -> None:
    primary = sealed.keyring().primary_id
    assert all(
        hexed is None and key_id_of(value) == primary for _, hexed, value in signing_rows(sealed)
    )
    token = sealed.registry_password()
    assert registry_login(sealed, token) == 200
    sealed.restart()
    assert registry_login(sealed, token) == 200


def test_a_signing_key_stored_before_sealing_is_sealed_at_the_next_start(
    sealed: EcrdServer,
) -> None:
    # given the newest key as an installation from before sealing stored it (plain hex)
    generation, secret = sealed.signing_key()
    issuer = sealed.token_issuer()
    metadata_write(
        sealed,
        "UPDATE signing_keys SET secret_hex = :hex, secret_sealed = NULL WHERE generation = :g",
        hex=secret.hex(),
        g=generation,
    )
    old_token = _issue(issuer)
    # when the server starts, then the row is sealed, the key the same, its tokens valid
    sealed.restart()
    row = next(row for row in signing_rows(sealed) if row[0] == generation)
    assert row[1] is None and row[2].startswith("s1:")
    assert sealed.signing_key() == (generation, secret)
    assert registry_login(sealed, old_token) == 200


def test_rotation_adds_a_key_reseals_everything_and_drops_the_old_key(sealed: EcrdServer) -> None:
    secrets = secrets_of(sealed)
    key_file = sealed.data_dir / "sealing.keys"
    old_id = sealed.keyring().primary_id
    name = unique_name("rotated")
    secrets.create_secret(Name=name, SecretString="before rotation")
    token = _issue(sealed.token_issuer())

    # 1. a new key first: new values are sealed with it, old ones still open
    made = CliRunner().invoke(ecrd_command, ["sealing", "new-key"])
    assert made.exit_code == 0, made.output
    new_line = made.stdout.strip()
    new_id = new_line.split(":", 1)[0]
    key_file.write_text(new_line + "\n" + key_file.read_text())
    sealed.restart()
    put = secrets.put_secret_value(SecretId=name, SecretString="after the new key")
    values = stored_values(sealed, secrets.describe_secret(SecretId=name)["ARN"])
    assert sorted(str(key_id_of(value)) for value in values) == sorted([old_id, new_id])
    assert secrets.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")["SecretString"] == (
        "before rotation"
    )
    # (and a signing key left plain by an older ecrd is covered too)
    generation, secret = sealed.signing_key()
    metadata_write(
        sealed,
        "UPDATE signing_keys SET secret_hex = :hex, secret_sealed = NULL WHERE generation = :g",
        hex=secret.hex(),
        g=generation,
    )

    # 2. the re-seal, while the server runs
    resealed = sealed.ecrd_command("sealing", "reseal")
    assert resealed.returncode == 0, resealed.stderr
    assert f"sealed with key {new_id}" in resealed.stdout
    status = sealed.ecrd_command("sealing", "status")
    assert status.returncode == 0, status.stderr
    assert f"{old_id}  opens  secret values: 0  signing keys: 0" in status.stdout
    assert all(key_id_of(value) == new_id for value in stored_values(sealed, put["ARN"]))
    assert all(row[1] is None and key_id_of(row[2]) == new_id for row in signing_rows(sealed))

    # 3. the old key dropped: every value and token still reads
    key_file.write_text(new_line + "\n")
    sealed.restart()
    assert secrets.get_secret_value(SecretId=name)["SecretString"] == "after the new key"
    previous = secrets.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")
    assert previous["SecretString"] == "before rotation"
    assert registry_login(sealed, token) == 200
    assert sealed.ecrd_command("sealing", "status").returncode == 0


def test_a_server_with_other_keys_answers_an_error_not_a_500(sealed: EcrdServer) -> None:
    secrets = secrets_of(sealed)
    name = unique_name("other-keys")
    created = secrets.create_secret(Name=name, SecretString="sealed with the first keys")
    stored_id = sealed.keyring().primary_id
    stray = new_key()
    sealed.environment["ECRD_SEALING_KEYS"] = stray.line()
    try:
        sealed.restart()
        # the value does not open: a modeled error naming the key it needs, never the value
        message = expect_error("DecryptionFailure", secrets.get_secret_value, SecretId=name)
        assert stored_id in message and "sealed with the first keys" not in message
        # what is not sealed still answers, and the server still signs (with a new key)
        assert secrets.describe_secret(SecretId=name)["ARN"] == created["ARN"]
        assert sealed.ecr().get_authorization_token()["authorizationData"]
        # the re-seal leaves what it cannot open, and says which key it needs
        resealed = sealed.ecrd_command("sealing", "reseal")
        assert resealed.returncode != 0
        assert stored_id in resealed.stderr and "Traceback" not in resealed.stderr
        assert sealed.ecrd_command("sealing", "status").returncode != 0
    finally:
        del sealed.environment["ECRD_SEALING_KEYS"]
        # the signing key that server made cannot open with the module's keys: drop it
        metadata_write(
            sealed,
            "DELETE FROM signing_keys WHERE secret_sealed LIKE :stray",
            stray=f"s1:{stray.key_id}:%",
        )
        sealed.restart()
    assert secrets.get_secret_value(SecretId=name)["SecretString"] == "sealed with the first keys"


def _issue(issuer: TokenIssuer) -> str:
    """A registry token of the root, signed as the server signs."""
    token, _ = asyncio.run(issuer.issue(ACCOUNT_ID, None, REGION))
    return token


def test_keys_given_as_a_setting_reach_every_worker(tmp_path: Path) -> None:
    # given a server of two workers with its keys in ECRD_SEALING_KEYS
    key = new_key()
    server = EcrdServer(
        tmp_path / "data",
        extra_args=["--workers", "2"],
        environment={"ECRD_SEALING_KEYS": key.line()},
    )
    server.start()
    try:
        secrets = secrets_of(server)
        made = [
            secrets.create_secret(Name=unique_name("workers"), SecretString=f"value {index}")
            for index in range(4)
        ]
        # then every worker seals with that key and opens what the other sealed
        for _ in range(2):
            for index, created in enumerate(made):
                read = secrets.get_secret_value(SecretId=created["ARN"])
                assert read["SecretString"] == f"value {index}"
        for created in made:
            assert [key_id_of(value) for value in stored_values(server, created["ARN"])] == [
                key.key_id
            ]
        # and no key file was made beside the store
        assert not (server.data_dir / "sealing.keys").exists()
    finally:
        server.stop()
