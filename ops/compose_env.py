"""Write .env for docker-compose.yml: a fresh random value for every secret it lacks
(passwords, the codec keys, the workers' secret).

    python3 ops/compose_env.py [PATH]      # PATH defaults to .env beside docker-compose.yml

Docker Compose reads .env before it starts any container, so no container can make it;
`make compose-up` runs this first. Values already in the file are kept (a database made
with them keeps them), and none is ever printed. Standard library only: it runs before
Goalkeeper is installed.
"""

import base64
import os
import secrets
import sys
from datetime import UTC, datetime
from pathlib import Path

PASSWORDS = (
    "POSTGRES_PASSWORD",
    "GOALKEEPER_OWNER_DB_PASSWORD",
    "GOALKEEPER_WORKER_DB_PASSWORD",
    "GOALKEEPER_API_DB_PASSWORD",
    "TEMPORAL_DB_PASSWORD",
    "GRAFANA_ADMIN_PASSWORD",
)
"""Every password docker-compose.yml takes from .env."""
CODEC_KEYS = "GOALKEEPER_CODEC_KEYS"
WORKER_SECRET = "GOALKEEPER_WORKER_SECRET"
VARIABLES = (*PASSWORDS, CODEC_KEYS, WORKER_SECRET)


def fresh(name: str) -> str:
    """A new value for `name`: URL-safe, so it goes into a DATABASE_URL as it is."""
    if name in (CODEC_KEYS, WORKER_SECRET):  # as `starter.py codec-key new` makes one
        key_id = f"{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(2)}"
        return f"{key_id}:{base64.b64encode(secrets.token_bytes(32)).decode()}"
    return secrets.token_urlsafe(32)


def read(path: Path) -> dict[str, str]:
    """The NAME=VALUE lines of an .env file (comments and blank lines skipped)."""
    if not path.exists():
        return {}
    values = {}
    for line in path.read_text().splitlines():
        name, equals, value = line.strip().partition("=")
        if equals and not name.startswith("#"):
            values[name.strip()] = value.strip()
    return values


def complete(path: Path) -> list[str]:
    """Add a fresh value for each variable `path` lacks (or has empty); the names added.
    The file is readable by its owner alone."""
    present = read(path)
    missing = [name for name in VARIABLES if not present.get(name)]
    text = path.read_text() if path.exists() else ""
    if missing:
        if text and not text.endswith("\n"):
            text += "\n"
        text += "".join(f"{name}={fresh(name)}\n" for name in missing)
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(partial, 0o600)
    os.replace(partial, path)
    return missing


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else Path(__file__).resolve().parent.parent / ".env"
    added = complete(path)
    print(f"{path}: {'added ' + ', '.join(added) if added else 'complete'} (owner-only)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
