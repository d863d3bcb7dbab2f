"""Suggestions for better runbooks, skills and agents, newest first."""

from typing import Any

from fastapi import APIRouter

from goalkeeper.suggestions import SuggestionStatus
from interfaces.api.auth import Access, Reader
from interfaces.api.problems import Problem
from interfaces.api.state import Limit, Pool
from store.suggestions import list_suggestions

router = APIRouter(tags=["suggestions"])


@router.get("/suggestions")
async def suggestions(
    pool: Pool,
    access: Reader,
    status: SuggestionStatus | None = None,
    goal: str | None = None,
    limit: Limit = 50,
) -> dict[str, Any]:
    """Suggestions of one status (or all), of one goal if given, from the goals of the
    token's workspaces."""
    if access.scope is None:
        return {"items": await list_suggestions(pool, status, limit=limit, goal_id=goal)}
    rows = await pool.fetch(
        """
        SELECT s.suggestion_id::text, s.goal_id, s.kind, s.subject, s.message, s.action,
               s.evidence, s.status, s.decided_by, s.decided_at, s.decision_comment,
               s.created_at
        FROM suggestions s JOIN goals g USING (goal_id)
        WHERE ($1::text IS NULL OR s.status = $1) AND ($3::text IS NULL OR s.goal_id = $3)
          AND g.workspace = ANY($4)
        ORDER BY s.created_at DESC, s.kind, s.suggestion_id LIMIT $2
        """,
        None if status is None else status.value,
        limit,
        goal,
        access.scope,
    )
    return {"items": [dict(r) for r in rows]}


async def own_suggestion(pool: Pool, access: Access, suggestion_id: str) -> str:
    """The whole id of the one suggestion of the token's workspaces that `suggestion_id`
    (or its first 4+ characters) names, for the decision; what the token may not see is
    never matched."""
    if access.scope is None:
        return suggestion_id
    prefix = suggestion_id.strip().lower()
    found = await pool.fetch(
        """
        SELECT s.suggestion_id::text FROM suggestions s JOIN goals g USING (goal_id)
        WHERE starts_with(s.suggestion_id::text, $1) AND g.workspace = ANY($2) LIMIT 2
        """,
        prefix,
        access.scope,
    )
    if len(prefix) < 4 or len(found) > 1:
        return suggestion_id  # too short, or ambiguous among its own: refused as such
    if not found:  # as the decision refuses an unknown id, word for word
        raise Problem(
            409,
            "Suggestion not decided",
            f"no suggestion {suggestion_id!r}: expected an id from 'suggestions'",
        )
    return str(found[0]["suggestion_id"])
