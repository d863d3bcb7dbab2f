"""Goals' deliverables in PostgreSQL: the compiled document and the compile task's result."""

import asyncpg

from goalkeeper.compiling import Compiled, parse_compiled
from store.results import resolve


async def read_deliverable(pool: asyncpg.Pool, goal_id: str) -> str | None:
    """A goal's compiled deliverable, or None when it has none (yet)."""
    body: str | None = await pool.fetchval(
        "SELECT body FROM deliverables WHERE goal_id = $1", goal_id
    )
    return body


async def compiled(pool: asyncpg.Pool, goal_id: str, task_id: str | None = None) -> Compiled | None:
    """The result of the goal's last completed compile task (or of `task_id`), if any."""
    result = await pool.fetchval(
        """
        SELECT result FROM tasks
        WHERE goal_id = $1 AND spec->>'expects' = 'deliverable' AND status = 'completed'
          AND ($2::text IS NULL OR task_id = $2)
        ORDER BY position DESC LIMIT 1
        """,
        goal_id,
        task_id,
    )
    if result is None:
        return None
    parsed = parse_compiled(await resolve(pool, result))
    return None if isinstance(parsed, str) else parsed
