"""Row writers shared by the activities: each one round trip, each idempotent on its own."""

import uuid
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


async def open_alert(
    connection: Connection,
    kind: str,
    subject: str,
    message: str,
    action: str = "",
    repaired: bool = False,
) -> bool:
    """Open an alert on `subject`, or refresh the one open; True when it is new (only a new
    one goes to the webhook, so a retried write never posts twice)."""
    return bool(
        await connection.fetchval(
            """
            INSERT INTO alerts (alert_id, kind, subject, message, action, repaired)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (kind, subject) WHERE resolved_at IS NULL DO UPDATE SET
                message = EXCLUDED.message, action = EXCLUDED.action,
                repaired = EXCLUDED.repaired, seen = alerts.seen + 1, last_seen = now()
            RETURNING seen = 1
            """,
            uuid.uuid4(),
            kind,
            subject,
            message,
            action,
            repaired,
        )
    )
