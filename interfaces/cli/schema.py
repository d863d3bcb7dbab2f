"""`schema apply`: the schema's owner creates or updates it, where workers log in as
roles that may not (docker-compose.yml's `schema` service)."""

import argparse

from activities.database import SCHEMA_FILES, apply_schema, owns_schema
from interfaces.cli.session import CliError, Session


async def apply(session: Session, args: argparse.Namespace) -> None:
    """Apply every schema file, idempotently; only the schema's owner may."""
    pool = await session.pool()
    if not await owns_schema(pool):
        login = await pool.fetchval("SELECT session_user")
        raise CliError(
            f"login {login!r} does not own the schema, so it may not apply it: "
            "use its owner's DATABASE_URL"
        )
    await apply_schema(pool)
    session.emit({"applied": list(SCHEMA_FILES)}, f"schema applied: {', '.join(SCHEMA_FILES)}")
