"""docs/settings.md: generated from the Settings class, current, and true to what ecrd reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ecrd.settings import Settings, load_settings
from ecrd.settings_reference import REGENERATE, setting_entries, settings_markdown

# Autouse: no ECRD_* variable from the shell, and a working folder without an ecrd.toml.
from tests.test_settings import no_ecrd_environment

__all__ = ["no_ecrd_environment"]

pytestmark = pytest.mark.metadata_independent

REFERENCE = Path(__file__).parent.parent / "docs" / "settings.md"


def test_the_reference_is_current() -> None:
    # when the reference is generated again; then it is what docs/settings.md holds
    assert REFERENCE.read_text() == settings_markdown(), f"run: {REGENERATE}"


def test_every_setting_is_described_under_its_variable_and_key() -> None:
    # given the reference
    markdown = settings_markdown()

    # then each setting has a section naming its variable and TOML key, with its meaning
    for name, field in Settings.model_fields.items():
        assert f"\n### {name}\n" in markdown, name
        assert f"variable `ECRD_{name.upper()}`, TOML key `{name}`" in markdown, name
        assert field.description and field.description in markdown, name


def test_the_documented_defaults_and_toml_keys_are_what_ecrd_reads(tmp_path: Path) -> None:
    # given an ecrd.toml that sets every setting with a default to the documented default
    entries = [entry for entry in setting_entries() if entry.default_toml is not None]
    (tmp_path / "ecrd.toml").write_text(
        "".join(f"{entry.name} = {entry.default_toml}\n" for entry in entries)
    )

    # when the settings are loaded from it
    loaded = load_settings()

    # then every value is the default, so each key and default in the reference is right
    defaults = Settings()
    for entry in entries:
        assert getattr(loaded, entry.name) == getattr(defaults, entry.name), entry.name


def test_every_documented_variable_is_one_ecrd_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    # given every documented variable set to the documented default (strings unquoted)
    entries = [entry for entry in setting_entries() if entry.default_toml is not None]
    for entry in entries:
        value = entry.default_toml or ""
        monkeypatch.setenv(entry.variable, json.loads(value) if value.startswith('"') else value)

    # when the settings are loaded; then none is refused as unknown, and each is the default
    loaded, defaults = load_settings(), Settings()
    for entry in entries:
        assert getattr(loaded, entry.name) == getattr(defaults, entry.name), entry.variable


def test_the_documented_variables_are_what_ecrd_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    # given each documented variable set to a value other than the setting's default
    values = {"ECRD_PORT": "6123", "ECRD_LOG_FORMAT": "json", "ECRD_CREATE_ON_PUSH": "false"}
    variables = {entry.name: entry.variable for entry in setting_entries()}
    for name in ("port", "log_format", "create_on_push"):
        monkeypatch.setenv(variables[name], values[variables[name]])

    # when the settings are loaded; then the variables set them
    loaded = load_settings()
    assert (loaded.port, loaded.log_format, loaded.create_on_push) == (6123, "json", False)


def test_flags_are_named_with_the_commands_that_take_them() -> None:
    # given the entries
    by_name = {entry.name: entry for entry in setting_entries()}

    # then the serve flags are there, the store flags belong to every command, and a
    # setting without a flag names none
    assert (by_name["port"].flag, by_name["port"].flag_commands) == ("--port", ("ecrd serve",))
    assert by_name["data_dir"].flag == "--data-dir"
    # (`ecrd sealing new-key` reads no store, so only its two siblings are named; every
    # `ecrd signing` command does, so the group is)
    every = (
        "ecrd serve", "ecrd keys", "ecrd jobs", "ecrd gc", "ecrd lifecycle",
        "ecrd sealing status", "ecrd sealing reseal", "ecrd signing", "ecrd vulndb",
    )  # fmt: skip
    assert by_name["data_dir"].flag_commands == every
    assert by_name["database_url"].flag_commands == every
    assert (by_name["region"].flag, by_name["region"].flag_commands) == (None, ())


def test_a_secret_is_shown_only_as_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    # given a bootstrap secret in the environment
    secret = "referenceSecretThatMustNotShow0000000000"
    monkeypatch.setenv("ECRD_BOOTSTRAP_SECRET_ACCESS_KEY", secret)

    # when the reference is generated; then the secret's default is "empty" and the
    # environment's value appears nowhere
    entry = {entry.name: entry for entry in setting_entries()}["bootstrap_secret_access_key"]
    assert entry.default_text == "empty"
    assert "secret" in entry.type_text
    assert secret not in settings_markdown()
