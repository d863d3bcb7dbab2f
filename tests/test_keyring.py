"""Private keys live in the data directory unless GOALKEEPER_KEY_DIR says otherwise."""

import stat
from pathlib import Path

import pytest

from interfaces.keyring import key_dir, key_path, load_key, new_key


def test_keys_default_to_the_data_directory_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GOALKEEPER_KEY_DIR", raising=False)
    monkeypatch.setenv("GOALKEEPER_DATA_DIR", str(tmp_path / "data"))
    assert key_dir() == tmp_path / "data" / "keys"
    private, _ = new_key("approver", "ops-lead")
    path = key_path("approver", "ops-lead")
    assert path == tmp_path / "data" / "keys" / "approver" / "ops-lead.key"
    assert load_key("approver", "ops-lead") == private
    for made in (path, path.parent, key_dir()):
        mode = stat.S_IMODE(made.stat().st_mode)
        assert not mode & (stat.S_IRWXG | stat.S_IRWXO), f"expected {made} owner-only, got {mode:o}"


def test_without_a_data_directory_keys_are_in_the_clone_s_goalkeeper_folder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GOALKEEPER_KEY_DIR", raising=False)
    monkeypatch.delenv("GOALKEEPER_DATA_DIR", raising=False)
    assert key_dir() == Path(".goalkeeper") / "keys"  # what `make clean` removes


def test_goalkeeper_key_dir_overrides_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOALKEEPER_KEY_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("GOALKEEPER_DATA_DIR", str(tmp_path / "data"))
    assert key_dir() == tmp_path / "elsewhere"
