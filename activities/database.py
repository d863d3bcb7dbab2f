"""The PostgreSQL connection pool and the schema, applied idempotently at worker start."""

import json
from enum import StrEnum
from importlib import resources

import asyncpg

from goalkeeper.statuses import (
    AgentStatus,
    AssignmentStatus,
    GoalStatus,
    RequestStatus,
    TaskStatus,
)

ENUM_TYPES: dict[str, type[StrEnum]] = {
    "agent_status": AgentStatus,
    "task_status": TaskStatus,
    "goal_status": GoalStatus,
    "assignment_status": AssignmentStatus,
    "request_status": RequestStatus,
}
"""PostgreSQL enum types and the Python enums they are generated from."""

SCHEMA_FILES = (
    "schema.sql",
    "schema_costs.sql",
    "schema_learning.sql",
    "schema_api.sql",
    "schema_security.sql",
)
"""Applied in this order: the core read model, then costs, feedback and suggestions, then
agents' records and learning (whose triggers watch the tables before it), then the HTTP
API's tokens, then agents' and approvers' keys."""

_SCHEMA_LOCK = 0x60A1_CEE9
"""Advisory lock id: workers starting together apply the schema one at a time."""


async def create_pool(database_url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose connections decode jsonb to Python values.

    Connections go back to the pool without asyncpg's reset query (a round trip per
    use): Goalkeeper changes no session state outside a transaction, and whoever
    LISTENs removes its own listener.
    """
    return await asyncpg.create_pool(
        database_url,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_keep_session,
    )


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Nothing to reset: see `create_pool`."""


async def _init_connection(connection: asyncpg.Connection) -> None:
    await connection.set_type_codec(
        "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
    )


async def apply_schema(pool: asyncpg.Pool) -> None:
    """Create or update the enum types, tables, indexes and views."""
    files = resources.files("activities")
    schema = "\n".join(files.joinpath(name).read_text() for name in SCHEMA_FILES)
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", _SCHEMA_LOCK)
        for type_name, enum in ENUM_TYPES.items():
            exists = await connection.fetchval(
                "SELECT 1 FROM pg_type WHERE typname = $1", type_name
            )
            if not exists:
                labels = ", ".join(f"'{member.value}'" for member in enum)
                await connection.execute(f"CREATE TYPE {type_name} AS ENUM ({labels})")
            else:
                for member in enum:
                    await connection.execute(
                        f"ALTER TYPE {type_name} ADD VALUE IF NOT EXISTS '{member.value}'"
                    )
        await connection.execute(schema)
