"""Goals and their tasks, from the read model; a running goal's progress from its workflow."""

from typing import Any

from fastapi import APIRouter
from temporalio.service import RPCError

from goalkeeper.models import Progress
from goalkeeper.statuses import GoalStatus, TaskStatus
from interfaces.api.problems import not_found
from interfaces.api.state import Limit, Offset, Pool, Temporal, page
from workflows.goal import GoalWorkflow

router = APIRouter(tags=["goals"])

_FIGURES = """
    p.tasks_total, p.tasks_completed, p.tasks_failed, p.tasks_skipped, p.tasks_running,
    p.tasks_awaiting_approval, p.tasks_pending, p.progress_percentage, p.agents_total,
    p.agents_completed, p.cost_usd, p.tokens_used
"""


@router.get("/goals")
async def list_goals(
    pool: Pool,
    status: GoalStatus | None = None,
    workspace: str | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Goals, newest first, with their progress figures from the read model."""
    filters = "($1::goal_status IS NULL OR status = $1) AND ($2::text IS NULL OR workspace = $2)"
    total = await pool.fetchval(f"SELECT count(*) FROM goals WHERE {filters}", status, workspace)
    # Page the goals first so the view aggregates only this page's tasks.
    rows = await pool.fetch(
        f"""
        WITH chosen AS (
            SELECT goal_id, title, workspace, status, created_at, ended_at, error
            FROM goals WHERE {filters}
            ORDER BY created_at DESC, goal_id LIMIT $3 OFFSET $4
        )
        SELECT c.*, {_FIGURES}
        FROM chosen c JOIN goal_progress p USING (goal_id)
        ORDER BY c.created_at DESC, c.goal_id
        """,
        status,
        workspace,
        limit,
        offset,
    )
    return page([dict(r) for r in rows], total, offset, limit)


@router.get("/goals/{goal_id:path}/tasks")
async def goal_tasks(
    pool: Pool,
    goal_id: str,
    status: TaskStatus | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    """A goal's tasks in plan order: status, agent, attempts, reworks, spend, dependencies."""
    await known_goal(pool, goal_id)
    filters = "goal_id = $1 AND ($2::task_status IS NULL OR status = $2)"
    total = await pool.fetchval(f"SELECT count(*) FROM tasks WHERE {filters}", goal_id, status)
    rows = await pool.fetch(
        f"""
        SELECT task_id, title, skill, status, agent_id, assignment_id::text, attempts, reworks,
               cost_usd::float8, tokens_used, depends_on, requires_approval, approvers, error,
               subgoal_id, started_at, ended_at, position
        FROM tasks WHERE {filters}
        ORDER BY position NULLS LAST, task_id LIMIT $3 OFFSET $4
        """,
        goal_id,
        status,
        limit,
        offset,
    )
    return page([dict(r) for r in rows], total, offset, limit)


@router.get("/goals/{goal_id:path}")
async def goal(pool: Pool, client: Temporal, goal_id: str) -> dict[str, Any]:
    """One goal: status, stage, progress, counts, spend against budget, and when it ran.

    A running goal's figures come from its workflow's `progress` query, the truth of the
    moment; an ended goal's from its stored report. `source` says which.
    """
    row = await pool.fetchrow(
        f"""
        SELECT g.goal_id, g.title, g.description, g.workspace, g.status, g.error, g.approvers,
               g.created_at, g.ended_at, g.report,
               coalesce(g.budget_usd::float8, (g.spec->>'budget_usd')::float8) AS budget_usd,
               coalesce(g.budget_tokens, (g.spec->>'budget_tokens')::bigint) AS budget_tokens,
               {_FIGURES}
        FROM goals g JOIN goal_progress p USING (goal_id)
        WHERE g.goal_id = $1
        """,
        goal_id,
    )
    if row is None:
        raise not_found("goal", goal_id, "a goal id from GET /api/v1/goals")
    body = dict(row)
    report = body.pop("report")
    current: Progress | None = None
    source = "read_model"
    if row["status"] == GoalStatus.RUNNING:
        try:
            current = await client.get_workflow_handle(goal_id).query(GoalWorkflow.progress)
            source = "workflow"
        except RPCError:
            current = None  # the workflow is unreachable: the read model still answers
    elif report is not None:
        current = Progress.model_validate(report["progress"])
        source = "report"
    if current is not None:
        figures = current.model_dump(mode="json", exclude={"goal_id", "on_task_failure"})
        body.update(figures)
        if current.budget_usd is None:
            body["budget_usd"] = row["budget_usd"]
        if current.budget_tokens is None:
            body["budget_tokens"] = row["budget_tokens"]
    else:
        body["stage"] = "running" if row["status"] == GoalStatus.RUNNING else str(row["status"])
        body["calculation_method"] = Progress.model_fields["calculation_method"].default
    body["source"] = source
    return body


async def known_goal(pool: Pool, goal_id: str) -> None:
    """Refuse an unknown goal id with a 404 that says where the known ones are."""
    if not await pool.fetchval("SELECT 1 FROM goals WHERE goal_id = $1", goal_id):
        raise not_found("goal", goal_id, "a goal id from GET /api/v1/goals")
