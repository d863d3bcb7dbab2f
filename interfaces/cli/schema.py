"""`schema apply`: the schema's owner creates or updates it, where workers log in as
roles that may not (docker-compose.yml's `schema` service)."""

import argparse

from interfaces.cli.commands import Command, Commands
from interfaces.cli.session import CliError, Session
from store.database import SCHEMA_FILES, apply_schema, owns_schema


def add_commands(commands: Commands, command: Command) -> None:
    schema = commands.add_parser(
        "schema", help="the PostgreSQL schema (its owner's)"
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    command(schema, "apply", "create or update the schema, as its owner", apply)


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
