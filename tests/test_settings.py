"""Settings: flag > ECRD_* variable > ecrd.toml > default, and clear one-line refusals."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ecrd.settings import SettingsError, load_settings
from tests.conftest import clean_environment

pytestmark = pytest.mark.metadata_independent


@pytest.fixture(autouse=True)
def no_ecrd_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ECRD_* variable from the shell, and a working folder without an ecrd.toml."""
    for key in os.environ:
        if key.startswith("ECRD_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def test_defaults() -> None:
    settings = load_settings()
    assert (settings.host, settings.port, settings.data_dir) == (
        "127.0.0.1",
        5000,
        Path("ecrd-data"),
    )


def test_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "ecrd.toml"
    config.write_text('port = 6000\nhost = "127.0.0.2"\nregion = "eu-west-1"\n')
    monkeypatch.setenv("ECRD_PORT", "7000")
    monkeypatch.setenv("ECRD_HOST", "127.0.0.3")
    settings = load_settings(None, port=8000)
    # flag beats variable beats file beats default
    assert settings.port == 8000
    assert settings.host == "127.0.0.3"
    assert settings.region == "eu-west-1"
    assert settings.account_id == "000000000000"


@pytest.mark.parametrize(
    ("toml", "environment", "named"),
    [
        ("colour = 1\n", {}, "colour"),
        ("", {"ECRD_PORTT": "1"}, "ECRD_PORTT"),
        ("", {"ECRD_PORT": "eighty"}, "port"),
        ('account_id = "12"\n', {}, "account_id"),
        ('log_level = "loud"\n', {}, "log_level"),
    ],
)
def test_bad_settings_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, toml: str, environment: dict[str, str],
    named: str,
) -> None:  # fmt: skip
    (tmp_path / "ecrd.toml").write_text(toml)
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert named in str(error.value)
    assert "\n" not in str(error.value)


def test_serve_stops_with_one_line_on_a_bad_value(tmp_path: Path) -> None:
    environment = clean_environment() | {"ECRD_WORKERS": "0"}
    result = subprocess.run(
        [sys.executable, "-m", "ecrd", "serve", "--data-dir", str(tmp_path / "d")],
        capture_output=True, text=True, timeout=60, env=environment, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "workers" in lines[0], result.stderr
    assert not (tmp_path / "d").exists()
