"""`ecrd keys create / list / delete`, run as a user runs them, against a running server's
store.

Keys take AWS's forms: an access key id of "AKIA" and 16 upper-case letters or digits, a
40-character secret, shown once. The ARN is the account's root (arn:aws:iam::<account>:root)
or an IAM user (arn:aws:iam::<account>:user/<name>). IAM user names are 1 to 64 characters of
ASCII letters, digits and _+=,.@- ; account ids are 12 ASCII digits.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner, Result

from ecrd.cli import main as ecrd_command
from tests.conftest import (
    ACCOUNT_ID,
    ROOT_ACCESS_KEY_ID,
    ROOT_SECRET_ACCESS_KEY,
    AccessKeyPair,
    EcrdServer,
    assert_one_line_error,
    clean_environment,
    free_port,
    postgres_database,
)

CLI_TIMEOUT = 60
ACCESS_KEY_ID = re.compile(r"AKIA[A-Z0-9]{16}")
OTHER_ACCOUNT = "111111111111"


def run_keys(server: EcrdServer, *args: str) -> subprocess.CompletedProcess[str]:
    """`ecrd keys ...` on the server's store, with no ECRD_* variable from the shell."""
    return subprocess.run(
        [sys.executable, "-m", "ecrd", "keys", *args, *server.store_arguments()],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        env=clean_environment(),
    )


def create(server: EcrdServer, *args: str) -> dict[str, Any]:
    result = run_keys(server, "create", *args)
    assert result.returncode == 0, result.stderr
    created: dict[str, Any] = json.loads(result.stdout)
    return created


def create_concurrently(server: EcrdServer, *arguments: list[str]) -> list[dict[str, Any]]:
    """Several `ecrd keys create` at once (each is a Python start; the store takes them)."""
    with ThreadPoolExecutor(max_workers=len(arguments)) as pool:
        return list(pool.map(lambda args: create(server, *args), arguments))


def listed_lines(server: EcrdServer) -> list[str]:
    result = run_keys(server, "list")
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def unique_user() -> str:
    return f"cli-{uuid.uuid4().hex[:10]}"


def error_code(raised: pytest.ExceptionInfo[ClientError]) -> str:
    return str(raised.value.response["Error"]["Code"])


# create


def test_create_prints_a_root_key_in_aws_forms(server: EcrdServer) -> None:
    # when a key is made for another account's root
    created = create(server, "--account", OTHER_ACCOUNT)

    # then the JSON has AWS's forms and names the root
    assert ACCESS_KEY_ID.fullmatch(created["AccessKeyId"]), created
    assert re.fullmatch(r"[A-Za-z0-9/+=]{40}", created["SecretAccessKey"]), created
    assert created["Arn"] == f"arn:aws:iam::{OTHER_ACCOUNT}:root"
    # and the key works as that account's root
    key = AccessKeyPair(created["AccessKeyId"], created["SecretAccessKey"], created["Arn"])
    assert server.ecr_as(key).describe_registry()["registryId"] == OTHER_ACCOUNT


def test_create_for_a_user_prints_the_user_arn(server: EcrdServer) -> None:
    # when a key is made for a user of the default account (no --account)
    name = unique_user()
    created = create(server, "--user", name)

    # then its ARN is the user's
    assert created["Arn"] == f"arn:aws:iam::{ACCOUNT_ID}:user/{name}"
    assert ACCESS_KEY_ID.fullmatch(created["AccessKeyId"])
    assert len(created["SecretAccessKey"]) == 40


# list


def test_list_shows_ids_accounts_and_arns_but_never_secrets(server: EcrdServer) -> None:
    # given a root key of another account and a user key
    name = unique_user()
    root_key, user_key = create_concurrently(server, ["--account", OTHER_ACCOUNT], ["--user", name])
    assert root_key["AccessKeyId"] != user_key["AccessKeyId"]
    assert root_key["SecretAccessKey"] != user_key["SecretAccessKey"]

    # when the keys are listed
    lines = listed_lines(server)
    output = "\n".join(lines)

    # then each key is on a line of its own with its account and ARN
    by_id = {line.split()[0]: line.split() for line in lines}
    assert by_id[root_key["AccessKeyId"]][1:3] == [OTHER_ACCOUNT, root_key["Arn"]]
    assert by_id[user_key["AccessKeyId"]][1:3] == [ACCOUNT_ID, user_key["Arn"]]
    assert by_id[ROOT_ACCESS_KEY_ID][1:3] == [ACCOUNT_ID, f"arn:aws:iam::{ACCOUNT_ID}:root"]
    # and no secret appears
    for secret in (root_key["SecretAccessKey"], user_key["SecretAccessKey"]):
        assert secret not in output
    assert ROOT_SECRET_ACCESS_KEY not in output


# delete


def test_delete_removes_the_key_and_a_second_delete_fails(server: EcrdServer) -> None:
    # given a working user key
    created = create(server, "--user", unique_user())
    key = AccessKeyPair(created["AccessKeyId"], created["SecretAccessKey"], created["Arn"])
    ecr = server.ecr_as(key)
    with pytest.raises(ClientError) as raised:
        ecr.describe_repositories()
    assert error_code(raised) == "AccessDeniedException"  # known, but without permissions

    # when it is deleted
    deleted = run_keys(server, "delete", key.access_key_id)

    # then the command succeeds, and the API does not know the key any more
    assert deleted.returncode == 0, deleted.stderr
    with pytest.raises(ClientError) as raised:
        ecr.describe_repositories()
    assert error_code(raised) == "UnrecognizedClientException"

    # when the keys are listed and it is deleted again (both at once)
    with ThreadPoolExecutor(max_workers=2) as pool:
        listed = pool.submit(run_keys, server, "list")
        again = pool.submit(run_keys, server, "delete", key.access_key_id)

    # then it is not listed, and the second delete fails and says so
    assert listed.result().returncode == 0
    assert key.access_key_id not in listed.result().stdout
    assert again.result().returncode != 0
    assert key.access_key_id in again.result().stderr


def test_deleting_a_key_that_never_existed_fails(server: EcrdServer) -> None:
    # when a made-up key id is deleted; then the command fails
    result = run_keys(server, "delete", "AKIA" + "N" * 16)
    assert result.returncode != 0
    assert "AKIA" + "N" * 16 in result.stderr


# Refused values
#
# Refusals are checked through the same click command in this process (a Python start per
# case would cost about a second each); one of them also as a real `ecrd` process.

_BAD_ACCOUNTS = {
    "too-short": "12345",
    "too-long": "1234567890123",
    "letters": "12345678901a",
    "negative": "-12345678901",
}
_BAD_USERS = {
    "empty": "",
    "space": "has space",
    "slash": "team/alice",
    "too-long": "u" * 65,
}


def create_in_process(server: EcrdServer, *args: str) -> Result:
    """`ecrd keys create` through click's runner, with no ECRD_* variable from the shell."""
    unset: dict[str, str | None] = {name: None for name in os.environ if name.startswith("ECRD_")}
    arguments = ["keys", "create", *args, *server.store_arguments()]
    return CliRunner().invoke(ecrd_command, arguments, env=unset)


def assert_refused(option: str, exit_code: int, stdout: str, stderr: str) -> None:
    """A usage error (exit status 2, as click answers) that names the option, and no key."""
    assert exit_code == 2, (stdout, stderr)
    assert option in stderr
    assert "AccessKeyId" not in stdout


def test_a_refused_value_ends_the_ecrd_process_with_a_usage_error(server: EcrdServer) -> None:
    # when `ecrd keys create` runs with an account id of 5 digits
    result = run_keys(server, "create", "--account", "12345")

    # then the process exits with status 2, says what is wrong, and prints no key
    assert_refused("--account", result.returncode, result.stdout, result.stderr)
    assert "12 digits" in result.stderr


@pytest.mark.parametrize("account", _BAD_ACCOUNTS.values(), ids=_BAD_ACCOUNTS.keys())
def test_create_refuses_an_account_that_is_not_12_digits(server: EcrdServer, account: str) -> None:
    # when a key is made for an account id that is not 12 digits; then it is refused
    result = create_in_process(server, f"--account={account}")
    assert_refused("--account", result.exit_code, result.stdout, result.stderr)


@pytest.mark.parametrize("user", _BAD_USERS.values(), ids=_BAD_USERS.keys())
def test_create_refuses_a_user_name_iam_would_refuse(server: EcrdServer, user: str) -> None:
    # when a key is made for a user name IAM does not allow; then it is refused
    result = create_in_process(server, f"--user={user}")
    assert_refused("--user", result.exit_code, result.stdout, result.stderr)


def test_create_refuses_an_account_of_non_ascii_digits(server: EcrdServer) -> None:
    # when a key is made for an account of 12 superscript twos; then it is refused
    result = create_in_process(server, "--account", "\u00b2" * 12)
    assert_refused("--account", result.exit_code, result.stdout, result.stderr)


def test_create_refuses_a_user_name_ending_in_a_newline(server: EcrdServer) -> None:
    # when a key is made for "<name>\n"; then it is refused
    result = create_in_process(server, "--user", unique_user() + "\n")
    assert_refused("--user", result.exit_code, result.stdout, result.stderr)


def test_create_refuses_a_user_name_with_non_ascii_letters(server: EcrdServer) -> None:
    # when a key is made for a user name with non-ASCII letters; then it is refused
    result = create_in_process(server, "--user", f"j\u00f6s\u00e9-{uuid.uuid4().hex[:6]}")
    assert_refused("--user", result.exit_code, result.stdout, result.stderr)


def test_create_refuses_a_policy_without_a_user(server: EcrdServer) -> None:
    # given a valid identity policy
    path = server.data_dir.parent / f"policy-{uuid.uuid4().hex}.json"
    statement = {"Effect": "Allow", "Action": "ecr:*", "Resource": "*"}
    path.write_text(json.dumps({"Version": "2012-10-17", "Statement": [statement]}))

    # when it is given for a root key (no --user); then it is refused: roots have no policies
    result = create_in_process(server, "--policy", str(path))
    assert_refused("--policy", result.exit_code, result.stdout, result.stderr)
    assert "--user" in result.stderr


# The store must exist
#
# `ecrd keys` works on the store a server made; a mistyped --data-dir must not leave an empty
# store behind (and a key in it that no server reads).


def run_keys_in(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`ecrd keys ...` run in `folder` (so no ecrd.toml applies), with no ECRD_* variable."""
    return subprocess.run(
        [sys.executable, "-m", "ecrd", "keys", *args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        env=clean_environment(),
        cwd=folder,
    )


def assert_one_line_refusal(result: subprocess.CompletedProcess[str], *named: str) -> None:
    assert_one_line_error(result, *named)
    assert "AccessKeyId" not in result.stdout


_KEYS_COMMANDS = {"list": ["list"], "create": ["create"], "delete": ["delete", "AKIA" + "N" * 16]}


@pytest.mark.parametrize("command", _KEYS_COMMANDS.values(), ids=_KEYS_COMMANDS.keys())
def test_keys_on_a_data_folder_that_does_not_exist_say_so_and_create_nothing(
    tmp_path: Path, command: list[str]
) -> None:
    # given a data folder that does not exist (a typo, or a server never started there)
    data_dir = tmp_path / "no-such-data"

    # when a keys command runs on it
    result = run_keys_in(tmp_path, *command, "--data-dir", str(data_dir))

    # then it says there is no data folder, and how to get one, and makes none
    assert_one_line_refusal(result, "no ecrd data folder", str(data_dir), "--database-url")
    assert not data_dir.exists()


def test_keys_on_a_folder_without_a_store_create_none(tmp_path: Path) -> None:
    # given an empty folder where no server has run
    data_dir = tmp_path / "empty"
    data_dir.mkdir()

    # when a key is made there; then it is refused, and no metadata.db appears
    result = run_keys_in(tmp_path, "create", "--data-dir", str(data_dir))
    assert_one_line_refusal(result, "no ecrd metadata store", str(data_dir / "metadata.db"))
    assert list(data_dir.iterdir()) == []


def test_keys_on_an_unknown_database_scheme_say_so(tmp_path: Path) -> None:
    # when keys are listed from a database ecrd does not speak; then one line names the setting
    result = run_keys_in(tmp_path, "list", "--database-url", "mysql://ecrd@127.0.0.1/ecrd")
    assert_one_line_refusal(result, "database_url", "'mysql'")


def test_keys_on_a_database_that_does_not_answer_say_so(tmp_path: Path) -> None:
    # when keys are listed from a PostgreSQL port where nothing listens
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/ecrd"
    result = run_keys_in(tmp_path, "list", "--database-url", url)

    # then one line says the database cannot be reached
    assert_one_line_refusal(result, "cannot reach the database", "connection refused")


def test_keys_with_a_database_url_need_no_data_folder(tmp_path: Path) -> None:
    # given a PostgreSQL database (new and empty) and a data folder that does not exist
    data_dir = tmp_path / "no-such-data"
    with postgres_database() as url:
        # when a key is made in that database and the keys are listed
        created = run_keys_in(
            tmp_path, "create", "--database-url", url, "--data-dir", str(data_dir)
        )
        listed = run_keys_in(tmp_path, "list", "--database-url", url, "--data-dir", str(data_dir))

    # then both work on the database alone, and no data folder was made
    assert created.returncode == 0, created.stderr
    key_id = json.loads(created.stdout)["AccessKeyId"]
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[0] for line in listed.stdout.splitlines()] == [key_id]
    assert not data_dir.exists()
