"""The workers' secret: the keys that seal Goalkeeper's own messages between workflows.

Every worker of a deployment holds the same keys (GOALKEEPER_WORKER_SECRET, or a file
named by GOALKEEPER_WORKER_SECRET_FILE), and nothing else does: not the API, agents,
approvers or anyone with a Temporal client. The embedded dev stack keeps one in its data
directory, made on first use. Entries are `KEY_ID:BASE64` (32 bytes or more), separated
by commas or lines; the first seals, all verify, so a new key goes first and an old one
stays until no running workflow holds a message sealed with it.
"""

import os
from pathlib import Path

from goalkeeper.seals import MIN_KEY_BYTES, SealKeyError, SealKeys
from interfaces.keyring import key_entries, new_key_entry, owner_only_text

FILE_NAME = "worker-secret"


def parse_secret(text: str, source: str) -> SealKeys:
    """Seal keys from `KEY_ID:BASE64` entries; `source` names the text in errors, which
    never repeat a key."""

    def size(n: int) -> str | None:
        return None if n >= MIN_KEY_BYTES else f"expected at least {MIN_KEY_BYTES}"

    make = "python starter.py worker-secret new"
    return SealKeys(tuple(key_entries(text, source, SealKeyError, size, make)))


def new_secret_entry(key_id: str) -> str:
    """A fresh random key as a `KEY_ID:BASE64` entry."""
    return new_key_entry(key_id, MIN_KEY_BYTES, SealKeyError)


def read_secret_file(path: Path) -> SealKeys:
    """Seal keys from a file only its owner may read or write."""
    return parse_secret(owner_only_text(path, "worker secret", SealKeyError), str(path))


def stack_secret_file(data_dir: Path) -> Path:
    """The embedded stack's secret file, made (owner-only) the first time it is asked for."""
    path = data_dir / FILE_NAME
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            pass
        else:
            with os.fdopen(fd, "w") as out:
                out.write(new_secret_entry("k1") + "\n")
    return path


def stack_secret(data_dir: Path) -> SealKeys:
    """The embedded stack's secret."""
    return read_secret_file(stack_secret_file(data_dir))
