"""Suggestions for better runbooks, skills and agents, newest first."""

from typing import Any

from fastapi import APIRouter

from activities.suggestions import list_suggestions
from goalkeeper.suggestions import SuggestionStatus
from interfaces.api.state import Limit, Pool

router = APIRouter(tags=["suggestions"])


@router.get("/suggestions")
async def suggestions(
    pool: Pool,
    status: SuggestionStatus | None = None,
    goal: str | None = None,
    limit: Limit = 50,
) -> dict[str, Any]:
    """Suggestions of one status (or all), of one goal if given."""
    return {"items": await list_suggestions(pool, status, limit=limit, goal_id=goal)}
