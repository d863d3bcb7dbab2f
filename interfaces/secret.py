"""The workers' secret: the keys that seal Goalkeeper's own messages between workflows.

Every worker of a deployment holds the same keys (GOALKEEPER_WORKER_SECRET, or a file
named by GOALKEEPER_WORKER_SECRET_FILE), and nothing else does: not the API, agents,
approvers or anyone with a Temporal client. The embedded dev stack keeps one in its data
directory, made on first use. Entries are `KEY_ID:BASE64` (32 bytes or more), separated
by commas or lines; the first seals, all verify, so a new key goes first and an old one
stays until no running workflow holds a message sealed with it.
"""

import base64
import binascii
import os
import re
import secrets
from pathlib import Path

from goalkeeper.seals import MIN_KEY_BYTES, SealKeyError, SealKeys
from interfaces.keyring import exposure

FILE_NAME = "worker-secret"
_KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def parse_secret(text: str, source: str) -> SealKeys:
    """Seal keys from `KEY_ID:BASE64` entries; `source` names the text in errors, which
    never repeat a key."""
    entries = [
        entry.strip()
        for line in text.splitlines()
        if not line.strip().startswith("#")
        for entry in line.split(",")
    ]
    keys: list[tuple[str, bytes]] = []
    for n, entry in enumerate((e for e in entries if e), start=1):
        key_id, colon, encoded = entry.partition(":")
        if not colon or not _KEY_ID.fullmatch(key_id.strip()):
            raise SealKeyError(
                f"{source}: entry {n} is not KEY_ID:BASE64_KEY; make one with "
                "'python starter.py worker-secret new'"
            )
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except binascii.Error:
            raise SealKeyError(f"{source}: key {key_id.strip()!r} is not valid base64") from None
        if len(key) < MIN_KEY_BYTES:
            raise SealKeyError(
                f"{source}: key {key_id.strip()!r} is {len(key)} bytes; expected at least "
                f"{MIN_KEY_BYTES}"
            )
        keys.append((key_id.strip(), key))
    if not keys:
        raise SealKeyError(f"{source}: expected at least one KEY_ID:BASE64 entry, got none")
    if len({key_id for key_id, _ in keys}) != len(keys):
        raise SealKeyError(f"{source}: a key id appears twice; ids must be unique")
    return SealKeys(tuple(keys))


def new_secret_entry(key_id: str) -> str:
    """A fresh random key as a `KEY_ID:BASE64` entry."""
    if not _KEY_ID.fullmatch(key_id):
        raise SealKeyError(
            f"expected a key id of letters, digits, '.', '_' or '-' (64 at most), got {key_id!r}"
        )
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(MIN_KEY_BYTES)).decode()}"


def read_secret_file(path: Path) -> SealKeys:
    """Seal keys from a file only its owner may read or write."""
    try:
        problem = exposure(path)
    except OSError as exc:
        raise SealKeyError(f"cannot read the worker secret file {path}: {exc.strerror}") from None
    if problem:
        raise SealKeyError(f"the worker secret file {problem}")
    return parse_secret(path.read_text(), str(path))


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
