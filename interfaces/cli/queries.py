"""Questions people ask of the read model: which goals exist, what waits for whom."""

import asyncpg


async def list_goals(pool: asyncpg.Pool, limit: int = 50) -> list[asyncpg.Record]:
    """Newest goals first, with the progress figures of the `goal_progress` view."""
    return await pool.fetch(
        """
        SELECT p.*, g.title, g.created_at, g.ended_at, g.error
        FROM goal_progress p JOIN goals g USING (goal_id)
        ORDER BY g.created_at DESC LIMIT $1
        """,
        limit,
    )


async def awaiting_approval(
    pool: asyncpg.Pool,
    approver: str | None,
    limit: int | None = None,
    workspaces: list[str] | None = None,
) -> list[asyncpg.Record]:
    """Tasks waiting for a decision, those the approver may decide on if one is named.

    `limit` bounds the rows for callers that page; None reads them all. `workspaces`
    keeps those of their goals (None: every workspace).
    """
    return await pool.fetch(
        """
        SELECT t.goal_id, t.task_id, t.title, t.agent_id, t.approvers, t.result, t.reworks,
               t.updated_at, g.title AS goal_title
        FROM tasks t JOIN goals g USING (goal_id)
        WHERE t.status = 'awaiting_approval' AND ($1::text IS NULL OR $1 = ANY(t.approvers))
          AND ($3::text[] IS NULL OR g.workspace = ANY($3))
        ORDER BY t.updated_at LIMIT $2
        """,
        approver,
        limit,
        workspaces,
    )
