"""Private signing keys on this machine: one file per agent or approver, owner-only.

Kept under GOALKEEPER_KEY_DIR, else the user's config directory (`~/.config/goalkeeper/
keys`). A key file readable by others is refused, as ssh refuses one, because whoever
reads it can sign as its owner.
"""

import os
import stat
from pathlib import Path

import platformdirs

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
    """Where private keys are kept on this machine."""
    configured = os.environ.get("GOALKEEPER_KEY_DIR")
    if configured:
        return Path(configured)
    return Path(platformdirs.user_config_dir("goalkeeper")) / "keys"


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
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(private + "\n")
    path.with_suffix(".tmp").replace(path)
    return private, public


def key_for(kind: str, name: str) -> str:
    """The private key of `name`, made and kept on first use."""
    return load_key(kind, name) or new_key(kind, name)[0]
