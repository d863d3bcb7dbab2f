"""The schema: applied idempotently, one status vocabulary, an append-only audit trail."""

import uuid

import asyncpg
import pytest

from store.database import ENUM_TYPES, apply_schema


async def test_applying_the_schema_twice_changes_nothing(pool: asyncpg.Pool) -> None:
    tables = "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
    before = await pool.fetchval(tables)
    await apply_schema(pool)
    await apply_schema(pool)
    assert await pool.fetchval(tables) == before


async def test_postgres_enums_are_the_python_enums(pool: asyncpg.Pool) -> None:
    for type_name, enum in ENUM_TYPES.items():
        labels = await pool.fetchval(
            "SELECT array_agg(enumlabel ORDER BY enumsortorder) FROM pg_enum "
            "JOIN pg_type ON pg_type.oid = enumtypid WHERE typname = $1",
            type_name,
        )
        assert labels == [member.value for member in enum], type_name


async def test_an_unknown_agent_status_is_refused(pool: asyncpg.Pool) -> None:
    with pytest.raises(asyncpg.InvalidTextRepresentationError):
        await pool.execute(
            "INSERT INTO agents (agent_id, workspace, skills, status) "
            "VALUES ($1, 'w', '{}', 'active')",
            f"agent-{uuid.uuid4().hex[:6]}",
        )


async def test_events_are_append_only(pool: asyncpg.Pool) -> None:
    event_id = uuid.uuid4()
    await pool.execute(
        "INSERT INTO events (event_id, kind, message) VALUES ($1, 'test', 'kept forever')", event_id
    )
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await pool.execute("UPDATE events SET message = 'changed' WHERE event_id = $1", event_id)
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await pool.execute("DELETE FROM events WHERE event_id = $1", event_id)
