"""Goalkeeper's own A2A tasks: each one's latest Task (as the protocol's JSON), kept per
token, with the request it follows; a task outlives the API process that made it."""

from typing import Any

import asyncpg

TOKEN_LOCK = 0x0A2A_7A5C
"""Advisory lock class: one token's new tasks are counted and claimed one at a time."""


async def claim(
    pool: asyncpg.Pool,
    task_id: str,
    owner: dict[str, str],
    request_id: str,
    state: str,
    task: dict[str, Any],
    limit: int,
) -> tuple[bool, int]:
    """Keep a new task for `owner` (its `token_id`, `person` and `workspace`) unless the
    token already has `limit` tasks running; whether it was kept, and how many the token
    had running before."""
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))", TOKEN_LOCK, owner["token_id"]
        )
        running: int = await connection.fetchval(
            "SELECT count(*) FROM a2a_tasks WHERE token_id = $1 AND NOT final", owner["token_id"]
        )
        if running >= limit:
            return False, running
        await connection.execute(
            """
            INSERT INTO a2a_tasks (task_id, token_id, person, workspace, request_id, state, task)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            """,
            task_id,
            owner["token_id"],
            owner["person"],
            owner["workspace"],
            request_id,
            state,
            task,
        )
        return True, running


async def note_goal(pool: asyncpg.Pool, task_id: str, goal_id: str) -> None:
    """The goal the task's request became, once it has one."""
    await pool.execute(
        "UPDATE a2a_tasks SET goal_id = $2 WHERE task_id = $1 AND goal_id IS DISTINCT FROM $2",
        task_id,
        goal_id,
    )


async def save(
    pool: asyncpg.Pool,
    task_id: str,
    token_id: str,
    state: str,
    final: bool,
    task: dict[str, Any],
    goal_id: str | None = None,
) -> bool:
    """Keep a task's new state; an ended task stays as it ended (a late write from a
    follower that has not heard of its end changes nothing). Whether it was kept."""
    kept = await pool.fetchval(
        """
        UPDATE a2a_tasks SET state = $3, final = $4, task = $5,
            goal_id = coalesce($6, goal_id), updated_at = now()
        WHERE task_id = $1 AND token_id = $2 AND NOT final RETURNING 1
        """,
        task_id,
        token_id,
        state,
        final,
        task,
        goal_id,
    )
    return kept is not None


async def say_canceled(
    pool: asyncpg.Pool, task_id: str, token_id: str, task: dict[str, Any]
) -> None:
    """Put what a cancel stopped into a task canceled where no call held it (the SDK
    kept its last status message)."""
    await pool.execute(
        """
        UPDATE a2a_tasks SET task = $3, updated_at = now()
        WHERE task_id = $1 AND token_id = $2 AND final AND state = 'TASK_STATE_CANCELED'
        """,
        task_id,
        token_id,
        task,
    )


async def task_of(pool: asyncpg.Pool, task_id: str, token_id: str) -> dict[str, Any] | None:
    """The task `task_id` if `token_id` owns it: another token's task is not found."""
    task: dict[str, Any] | None = await pool.fetchval(
        "SELECT task FROM a2a_tasks WHERE task_id = $1 AND token_id = $2", task_id, token_id
    )
    return task


async def tasks_of(
    pool: asyncpg.Pool,
    token_id: str,
    *,
    context_id: str | None,
    state: str | None,
    offset: int,
    limit: int,
) -> tuple[list[dict[str, Any]], int]:
    """A page of a token's tasks, the latest changed first, and how many there are."""
    rows = await pool.fetch(
        """
        SELECT task, count(*) OVER () AS total FROM a2a_tasks
        WHERE token_id = $1 AND ($2::text IS NULL OR task->>'contextId' = $2)
          AND ($3::text IS NULL OR state = $3)
        ORDER BY updated_at DESC, task_id OFFSET $4 LIMIT $5
        """,
        token_id,
        context_id,
        state,
        offset,
        limit,
    )
    total = rows[0]["total"] if rows else 0
    return [r["task"] for r in rows], total


async def forget(pool: asyncpg.Pool, task_id: str, token_id: str) -> None:
    await pool.execute(
        "DELETE FROM a2a_tasks WHERE task_id = $1 AND token_id = $2", task_id, token_id
    )


async def unfinished(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    """Every task not yet ended, oldest first: an API that starts follows each again."""
    return await pool.fetch(
        "SELECT task_id, token_id, person, workspace, request_id, task FROM a2a_tasks "
        "WHERE NOT final ORDER BY created_at"
    )
