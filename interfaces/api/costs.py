"""What the work cost and what was wasted, grouped the way the caller asks."""

from typing import Any

from fastapi import APIRouter

from goalkeeper.costs import InvalidCostQuery, cost_query
from interfaces.api.auth import Access, Reader
from interfaces.api.goals import known_goal
from interfaces.api.problems import Problem, answers, not_found
from interfaces.api.state import Limit, Pool
from store.costs import cost_report

router = APIRouter(tags=["costs"])


@router.get("/costs")
@answers(
    {
        400: "a bad `by` or `since`, or no workspace named by a token of several",
        404: "no goal of that id, or a workspace, that the token may see",
    }
)
async def costs(
    pool: Pool,
    access: Reader,
    goal: str | None = None,
    workspace: str | None = None,
    by: str = "goal",
    since: str | None = None,
    limit: Limit = 50,
) -> dict[str, Any]:
    """Cost lines by goal, task, attempt, agent, skill, runbook, workspace or day, and totals.

    `since` is a day, YYYY-MM-DD (UTC); a goal's costs include its sub-goals'. A token of
    some workspaces reads one of them at a time: `workspace`, or its only one.
    """
    workspace = await _workspace(pool, access, goal, workspace)
    try:
        query = cost_query(goal_id=goal, workspace=workspace, by=by, since=since, limit=limit)
    except InvalidCostQuery as exc:
        # The core words its messages for the CLI's flags; here they are query parameters.
        raise Problem(400, "Invalid cost query", str(exc).replace("--", "")) from exc
    try:
        report = await cost_report(pool, query)
    except InvalidCostQuery as exc:
        raise not_found("goal", exc.value, "a goal id from GET /api/v1/goals") from exc
    return report.model_dump(mode="json")


async def _workspace(
    pool: Pool, access: Access, goal: str | None, workspace: str | None
) -> str | None:
    """The workspace a token's report is confined to; None for an all-workspaces token."""
    if access.scope is None:
        return workspace
    if goal is not None:
        return workspace or await known_goal(pool, access, goal)
    if workspace is not None and not access.sees(workspace):
        raise not_found("workspace", workspace, f"one of the token's: {', '.join(access.scope)}")
    if workspace is None and len(access.scope) > 1:
        raise Problem(
            400,
            "Which workspace",
            f"expected workspace=one of the token's ({', '.join(access.scope)}), got none",
        )
    return workspace or access.scope[0]
