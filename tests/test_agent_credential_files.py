"""The credentials' directory `agent.py --api URL --credentials DIR` serves: one owner-only
file per agent, refused with the reason otherwise."""

from pathlib import Path

import pytest

from interfaces.agents.over_http import (
    MAX_CREDENTIALS,
    CredentialFileError,
    credentials_in,
)


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_each_owner_only_credential_file_is_served(tmp_path: Path) -> None:
    write(tmp_path / "a.credential", "gka_one\n")
    write(tmp_path / "b.credential", "gka_two")
    write(tmp_path / "notes.txt", "not a credential", 0o644)
    found = credentials_in(tmp_path)
    assert [c.text for c in found] == ["gka_one", "gka_two"]
    assert found[0].source == str(tmp_path / "a.credential")


@pytest.mark.parametrize(
    ("files", "words"),
    [
        ({}, "no *.credential file"),
        ({"a.credential": ("gka_x", 0o644)}, "open to others"),
        ({"a.credential": ("  \n", 0o600)}, "is empty"),
    ],
)
def test_a_directory_that_cannot_be_served_is_refused_saying_why(
    tmp_path: Path, files: dict[str, tuple[str, int]], words: str
) -> None:
    for name, (text, mode) in files.items():
        write(tmp_path / name, text, mode)
    with pytest.raises(CredentialFileError, match=words.replace("*", r"\*")):
        credentials_in(tmp_path)


def test_not_a_directory_and_too_many_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CredentialFileError, match="expected a directory"):
        credentials_in(tmp_path / "missing")
    for n in range(MAX_CREDENTIALS + 1):
        write(tmp_path / f"a{n}.credential", f"gka_{n}")
    with pytest.raises(CredentialFileError, match=f"at most {MAX_CREDENTIALS}"):
        credentials_in(tmp_path)
