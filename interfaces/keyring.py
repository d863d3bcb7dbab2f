"""Private signing keys on this machine: one file per agent or approver, owner-only.

Kept under GOALKEEPER_KEY_DIR, else `keys` in the data directory (GOALKEEPER_DATA_DIR,
`.goalkeeper`), so each clone has its own keys and `make clean` removes them. A key file
readable by others is refused, as ssh refuses one, because whoever reads it can sign as
its owner.
"""

import base64
import binascii
import os
import re
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

from goalkeeper.errors import GoalkeeperError
from goalkeeper.signing import new_keys, public_key_of

KINDS = ("agent", "approver", "delegate")


class KeyFileError(GoalkeeperError):
    """A key file that is missing, unreadable, open to others or not a key."""


def exposure(path: Path) -> str | None:
    """Why a key file may not be used: others may read or write it (ssh refuses such
    files too); None if only its owner may. Raises OSError if it cannot be looked at."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return f"{path} is open to others (mode {mode:04o}); allow its owner only: chmod 600 {path}"
    return None


def key_dir() -> Path:
    """Where private keys are kept on this machine: GOALKEEPER_KEY_DIR, else the data
    directory's `keys` (the same default as `Settings.data_dir`)."""
    configured = os.environ.get("GOALKEEPER_KEY_DIR")
    if configured:
        return Path(configured)
    return Path(os.environ.get("GOALKEEPER_DATA_DIR") or ".goalkeeper") / "keys"


def key_path(kind: str, name: str) -> Path:
    """The file of `name`'s private key as an agent, approver or delegate."""
    if kind not in KINDS:
        raise ValueError(f"expected a key kind in {KINDS}, got {kind!r}")
    if not name or "/" in name or name.startswith("."):
        raise KeyFileError(f"expected a plain name for a key file, got {name!r}")
    return key_dir() / kind / f"{name}.key"


def load_key(kind: str, name: str) -> str | None:
    """The private key of `name`, or None if this machine has none."""
    path = key_path(kind, name)
    try:
        problem = exposure(path)
    except FileNotFoundError:
        return None
    if problem:
        raise KeyFileError(problem)
    key = path.read_text().strip()
    try:
        public_key_of(key)
    except GoalkeeperError as exc:
        raise KeyFileError(f"{path} does not hold a signing key: {exc}") from None
    return key


def new_key(kind: str, name: str, *, replace: bool = False) -> tuple[str, str]:
    """Make and keep a new key pair for `name`; (private, public). An existing key is kept
    unless `replace`: replacing it means re-registering the public key."""
    path = key_path(kind, name)
    if path.exists() and not replace:
        raise KeyFileError(f"{path} exists; expected no key yet (replace it on purpose)")
    private, public = new_keys()
    path.parent.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # the key directory
    path.parent.mkdir(exist_ok=True, mode=0o700)
    fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(private + "\n")
    path.with_suffix(".tmp").replace(path)
    return private, public


def key_for(kind: str, name: str) -> str:
    """The private key of `name`, made and kept on first use."""
    return load_key(kind, name) or new_key(kind, name)[0]


KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""A key id in a `KEY_ID:BASE64` entry: letters, digits, '.', '_' or '-', 64 at most."""


def key_entries(
    text: str,
    source: str,
    error: Callable[[str], Exception],
    size: Callable[[int], str | None],
    make: str,
) -> list[tuple[str, bytes]]:
    """Keys from `KEY_ID:BASE64` entries separated by commas or lines (blank entries and
    lines starting with '#' skipped), for the codec keys and the workers' secret.

    `size` says what is wrong with a key of that many bytes, if anything; `make` is the
    command that makes an entry. Errors name `source` and the entry, never a key's bytes.
    """
    entries = [
        entry.strip()
        for line in text.splitlines()
        if not line.strip().startswith("#")
        for entry in line.split(",")
    ]
    keys: list[tuple[str, bytes]] = []
    for n, entry in enumerate((e for e in entries if e), start=1):
        key_id, colon, encoded = entry.partition(":")
        key_id = key_id.strip()
        if not colon or not KEY_ID.fullmatch(key_id):
            # The entry itself is not repeated: it may be a bare key.
            raise error(
                f"{source}: entry {n} is not KEY_ID:BASE64_KEY (a key id of letters, digits, "
                f"'.', '_' or '-', a colon, then the key in base64); make one with '{make}'"
            )
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except binascii.Error:
            raise error(f"{source}: key {key_id!r} is not valid base64") from None
        problem = size(len(key))
        if problem:
            raise error(f"{source}: key {key_id!r} is {len(key)} bytes; {problem}")
        if key_id in dict(keys):
            raise error(f"{source}: key id {key_id!r} appears twice; ids must be unique")
        keys.append((key_id, key))
    if not keys:
        raise error(f"{source}: no keys; expected KEY_ID:BASE64_KEY entries")
    return keys


def new_key_entry(key_id: str, size: int, error: Callable[[str], Exception]) -> str:
    """A fresh random key of `size` bytes as a `KEY_ID:BASE64` entry."""
    if not KEY_ID.fullmatch(key_id):
        raise error(
            f"expected a key id of letters, digits, '.', '_' or '-' (64 at most), got {key_id!r}"
        )
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(size)).decode()}"


def owner_only_text(path: Path, what: str, error: Callable[[str], Exception]) -> str:
    """The text of a file of keys only its owner may read or write, as ssh requires of
    private keys; `what` names the file in errors."""
    try:
        problem = exposure(path)
    except OSError as exc:
        raise error(f"cannot read the {what} file {path}: {exc.strerror}") from None
    if problem:
        raise error(f"the {what} file {problem}")
    return path.read_text()
