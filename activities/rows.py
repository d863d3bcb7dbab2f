"""Row writers shared by the activities; each is idempotent on its own."""

from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from goalkeeper.models import TaskView
from goalkeeper.records import Event

Connection: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"
"""A connection, whether plain or borrowed from the pool."""


async def insert_event(connection: Connection, event: Event) -> None:
    """Append an event once: a retried activity carries the same `event_id`."""
    await connection.execute(
        """
        INSERT INTO events (event_id, goal_id, task_id, agent_id, kind, message, detail)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (event_id) DO NOTHING
        """,
        event.event_id,
        event.goal_id,
        event.task_id,
        event.agent_id,
        event.kind.value,
        event.message,
        event.detail,
    )


async def write_task(connection: Connection, task: TaskView, *, force: bool = False) -> bool:
    """Store a task's state unless a newer one (higher `seq`) is already stored.

    `force` overwrites whatever is stored: the health check re-projecting the workflow's
    state over a row edited behind the engine's back.
    """
    status = await connection.execute(
        """
        UPDATE tasks SET
            status = $3, agent_id = $4, assignment_id = $5, attempts = $6, reworks = $7,
            tokens_used = $8, cost_usd = $9, result = $10, error = $11,
            started_at = $12, ended_at = $13, seq = $14, updated_at = now()
        WHERE goal_id = $1 AND task_id = $2 AND (seq < $14 OR $15)
        """,
        task.goal_id,
        task.task_id,
        task.status.value,
        task.agent_id,
        task.assignment_id,
        task.attempts,
        task.reworks,
        task.tokens_used,
        task.cost_usd,
        task.result,
        task.error,
        task.started_at,
        task.ended_at,
        task.seq,
        force,
    )
    return status != "UPDATE 0"
