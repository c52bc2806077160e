"""The keyring (ecrd/sealing.py) as pure code: AES-GCM values bound to their row and key, the
key forms the setting and the key file take, and the key file made at a first start."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from ecrd.sealing import (
    Keyring,
    KeyringInvalid,
    SealingKey,
    Unsealable,
    key_id_of,
    load_keyring,
    new_key,
    parse_keys,
)
from ecrd.settings import Settings, SettingsError, load_settings

pytestmark = pytest.mark.metadata_independent
CONTEXT = "secret:arn:aws:secretsmanager:us-east-1:000000000000:secret:app-AbCdEf:v1"


def test_a_sealed_value_opens_only_for_its_row_and_holds_no_plain_text() -> None:
    keyring = Keyring([new_key()])
    sealed = keyring.seal(b"hunter2-the-password", CONTEXT)
    # it names its key, and the plain text is not in it (nor its base64)
    assert key_id_of(sealed) == keyring.primary_id
    assert "hunter2" not in sealed
    assert base64.b64encode(b"hunter2").decode()[:8] not in sealed
    assert keyring.open(sealed, CONTEXT) == b"hunter2-the-password"
    # sealing twice gives two different texts (a fresh nonce each time)
    assert keyring.seal(b"hunter2-the-password", CONTEXT) != sealed
    # bound to its row: another context does not open it
    with pytest.raises(Unsealable):
        keyring.open(sealed, CONTEXT.replace("v1", "v2"))


def test_an_altered_or_relabelled_value_does_not_open() -> None:
    first, second = new_key(), new_key()
    keyring = Keyring([first, second])
    sealed = keyring.seal(b"value", CONTEXT)
    body = sealed.split(":", 2)[2]
    flipped = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    with pytest.raises(Unsealable):
        keyring.open(f"s1:{first.key_id}:{flipped}", CONTEXT)
    # the key id is authenticated too: naming the other key of the keyring fails
    with pytest.raises(Unsealable) as raised:
        keyring.open(f"s1:{second.key_id}:{body}", CONTEXT)
    assert raised.value.key_id == second.key_id
    with pytest.raises(Unsealable):
        keyring.open("plain text", CONTEXT)


def test_the_first_key_seals_and_every_key_opens() -> None:
    old, new = new_key(), new_key()
    sealed_by_old = Keyring([old]).seal(b"value", CONTEXT)
    rotated = Keyring([new, old])
    assert rotated.open(sealed_by_old, CONTEXT) == b"value"
    assert not rotated.is_current(sealed_by_old)
    resealed = rotated.reseal(sealed_by_old, CONTEXT)
    assert key_id_of(resealed) == new.key_id and rotated.is_current(resealed)
    # once the old key is dropped, what it sealed no longer opens, and says which key it needs
    with pytest.raises(Unsealable) as raised:
        Keyring([new]).open(sealed_by_old, CONTEXT)
    assert raised.value.key_id == old.key_id
    assert old.key_id in raised.value.message
    assert Keyring([new]).open(resealed, CONTEXT) == b"value"


def test_keys_are_read_from_lines_or_commas_and_never_quoted_in_errors() -> None:
    first, second = new_key(), new_key()
    text = f"# comment\n{first.line()}\n\n{second.line()}\n"
    assert [key.key_id for key in parse_keys(text, "file")] == [first.key_id, second.key_id]
    assert parse_keys(f"{first.line()},{second.line()}", "setting")[1] == second
    # a key's repr never shows its bytes
    assert base64.b64encode(first.secret).decode() not in repr(first)
    short = f"k1:{base64.b64encode(b'x' * 16).decode()}"
    for bad in (
        "k1",
        short,
        "bad id!:" + first.line().split(":")[1],
        "",
        f"{first.line()},{first.line()}",
    ):
        with pytest.raises(KeyringInvalid) as raised:
            parse_keys(bad, "setting 'sealing_keys'")
        assert "sealing_keys" in str(raised.value)
        assert base64.b64encode(first.secret).decode() not in str(raised.value)


def test_a_first_start_makes_a_key_file_only_its_owner_reads(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    keyring = load_keyring(settings)
    path = tmp_path / "sealing.keys"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # a second load reads the same key, and a load that may not create refuses a missing file
    assert load_keyring(settings).primary_id == keyring.primary_id
    with pytest.raises(KeyringInvalid, match="no sealing key"):
        load_keyring(Settings(data_dir=tmp_path / "elsewhere"), create=False)
    # nothing but the key file was left in the folder
    assert sorted(os.listdir(tmp_path)) == ["sealing.keys"]


def test_the_setting_replaces_the_key_file_and_is_checked_at_load(tmp_path: Path) -> None:
    key = SealingKey("ops-2026", os.urandom(32))
    settings = Settings(data_dir=tmp_path, sealing_keys=key.line())
    assert load_keyring(settings).primary_id == "ops-2026"
    assert not (tmp_path / "sealing.keys").exists()
    # a malformed key stops the start with one line naming the setting, never the key
    with pytest.raises(SettingsError) as raised:
        load_settings(data_dir=tmp_path, sealing_keys="ops:not-base64")
    assert str(raised.value).startswith("invalid setting 'sealing_keys': entry 1 is not a key")
    assert "not-base64" not in str(raised.value)
