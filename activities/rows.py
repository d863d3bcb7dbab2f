"""Row writers shared by the activities: each one round trip, each idempotent on its own."""

from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from goalkeeper.models import TaskView
from goalkeeper.records import Event

Connection: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any] | asyncpg.Pool"
"""Where a statement runs: a connection, whether plain or borrowed, or the pool itself."""


async def insert_event(connection: Connection, event: Event) -> None:
    """Append an event once: a retried activity carries the same `event_id`."""
    await connection.execute("SELECT goalkeeper_event($1)", event.model_dump(mode="json"))


async def write_task(connection: Connection, task: TaskView, *, force: bool = False) -> bool:
    """Store a task's state unless a newer one (higher `seq`) is already stored.

    `force` also overwrites a row of the same `seq`: the health check re-projecting the
    workflow's state over a row edited behind the engine's back. A row is never
    overwritten by an older state, nor by a task of another run of the goal.
    """
    return bool(
        await connection.fetchval(
            "SELECT goalkeeper_write_task($1, $2)", task.model_dump(mode="json"), force
        )
    )
