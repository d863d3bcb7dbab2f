"""Questions people ask of the read model: which goals exist, what waits for whom."""

import json
from typing import Any

import asyncpg

from goalkeeper.references import content_digest, holds_reference


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


PREVIEW_CHARS = 4000
"""Of a stored result, what a list of approvals shows; the whole is a link away."""


async def awaiting_approval(
    pool: asyncpg.Pool,
    approver: str | None,
    limit: int | None = None,
    workspaces: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Tasks waiting for a decision, those the approver may decide on if one is named.

    Each with the result as reported (what a decision signs), the digest of its content,
    and the content: whole when inline, the first PREVIEW_CHARS of a stored one, whose
    whole `content_url` serves. `limit` bounds the rows for callers that page; None
    reads them all. `workspaces` keeps those of their goals (None: every workspace).
    """
    rows = await pool.fetch(
        """
        SELECT t.goal_id, t.task_id, t.title, t.agent_id, t.approvers, t.result, t.reworks,
               t.updated_at, g.title AS goal_title, r.bytes AS stored_bytes,
               CASE WHEN jsonb_typeof(r.body) = 'string' THEN left(r.body #>> '{}', $3)
                    ELSE left(jsonb_pretty(r.body), $3) END AS preview
        FROM tasks t JOIN goals g USING (goal_id)
        LEFT JOIN results r ON r.result_id = CASE
            WHEN t.result->>'$ref' ~ '^results/[0-9a-f-]{36}$'
            THEN substr(t.result->>'$ref', 9)::uuid END
        WHERE t.status = 'awaiting_approval' AND ($1::text IS NULL OR $1 = ANY(t.approvers))
          AND ($4::text[] IS NULL OR g.workspace = ANY($4))
        ORDER BY t.updated_at LIMIT $2
        """,
        approver,
        limit,
        PREVIEW_CHARS,
        workspaces,
    )
    return [_approval(row) for row in rows]


def _approval(row: asyncpg.Record) -> dict[str, Any]:
    item = dict(row) | {"approvers": list(row["approvers"])}
    stored, preview = item.pop("stored_bytes"), item.pop("preview")
    result = row["result"]
    item["content_digest"] = content_digest(result)
    if holds_reference(result):
        item["content"], item["content_bytes"] = preview, stored
        item["content_url"] = f"/api/v1/goals/{row['goal_id']}/tasks/{row['task_id']}/result"
    else:
        item["content"], item["content_bytes"] = result, len(json.dumps(result).encode())
        item["content_url"] = None
    return item
