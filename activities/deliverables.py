"""Compiling a goal's deliverable from its tasks' results, and reading it back."""

import asyncpg
from temporalio import activity

from activities.results import resolve
from goalkeeper.deliverables import (
    MAX_DELIVERABLE_BYTES,
    TaskOutcome,
    document_header,
    document_section,
)
from goalkeeper.records import CompileDeliverable

PAGE = 500
"""Tasks read per query while compiling: memory stays flat for goals of any size."""


async def read_deliverable(pool: asyncpg.Pool, goal_id: str) -> str | None:
    """A goal's compiled deliverable, or None when it has none (yet)."""
    body: str | None = await pool.fetchval(
        "SELECT body FROM deliverables WHERE goal_id = $1", goal_id
    )
    return body


class DeliverableActivities:
    """Compiles deliverables; holds the worker's connection pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @activity.defn
    async def compile_deliverable(self, request: CompileDeliverable) -> int:
        """Write the goal's document of results (plan order) and return its size in bytes."""
        goal = await self.pool.fetchrow(
            "SELECT title, description FROM goals WHERE goal_id = $1 AND first_run_id = $2",
            request.goal_id,
            request.goal_run_id,
        )
        if goal is None:
            return 0  # a newer goal of the same id replaced this one
        total, completed = await self.pool.fetchrow(
            "SELECT count(*), count(*) FILTER (WHERE status = 'completed') "
            "FROM tasks WHERE goal_id = $1",
            request.goal_id,
        ) or (0, 0)
        parts = [document_header(goal["title"], goal["description"], completed, total)]
        written, after = len(parts[0]), -1
        while True:  # a page at a time, each result resolved, rendered and let go
            rows = await self.pool.fetch(
                """
                SELECT position, task_id, title, status::text, agent_id, result, error
                FROM tasks WHERE goal_id = $1 AND position > $2 ORDER BY position LIMIT $3
                """,
                request.goal_id,
                after,
                PAGE,
            )
            for row in rows:
                full = written > MAX_DELIVERABLE_BYTES
                outcome = TaskOutcome(
                    row["task_id"],
                    row["title"],
                    row["status"],
                    row["agent_id"],
                    None if full else await resolve(self.pool, row["result"]),
                    row["error"],
                )
                parts.append(document_section(len(parts), outcome, full))
                written += len(parts[-1])
            if len(rows) < PAGE:
                break
            after = rows[-1]["position"]
        body = "\n".join(parts)
        size = len(body.encode())
        await self.pool.execute(
            """
            INSERT INTO deliverables (goal_id, goal_run_id, body, bytes) VALUES ($1, $2, $3, $4)
            ON CONFLICT (goal_id) DO UPDATE SET goal_run_id = EXCLUDED.goal_run_id,
                body = EXCLUDED.body, bytes = EXCLUDED.bytes, created_at = now()
            """,
            request.goal_id,
            request.goal_run_id,
            body,
            size,
        )
        return size
