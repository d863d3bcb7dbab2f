"""Goals and their tasks, from the read model; a running goal's progress from its workflow
when asked for (`live=true`)."""

import json
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from temporalio.service import RPCError

from goalkeeper import budgets
from goalkeeper.limits import MAX_NOTES_PER_ASSIGNMENT, MAX_TOOL_CALLS
from goalkeeper.models import BudgetState, Progress
from goalkeeper.progress import compute_progress
from goalkeeper.signing import digest
from goalkeeper.statuses import GoalStatus, TaskStatus
from interfaces.api.auth import Access, Reader
from interfaces.api.problems import Problem, answers, not_found
from interfaces.api.state import Limit, Offset, Pool, Temporal, page
from interfaces.telemetry import masked_values
from monitoring.traces import trace_id_of
from store.results import UnresolvedReference, resolve
from workflows.goal import GoalWorkflow

router = APIRouter(tags=["goals"])

UNKNOWN_GOAL = {404: "no goal of that id that the token may see"}
"""What `known_goal` answers, for the routes that call it to declare."""

_FIGURES = """
    p.tasks_total, p.tasks_completed, p.tasks_failed, p.tasks_skipped, p.tasks_running,
    p.tasks_awaiting_approval, p.tasks_pending, p.progress_percentage, p.agents_total,
    p.agents_completed, p.cost_usd, p.tokens_used
"""

_STANDING = """
    CASE WHEN g.status = 'running' THEN
        (SELECT coalesce(sum((e.detail->>'count')::int), 0) FROM events e
         WHERE e.goal_id = g.goal_id AND e.kind = 'tasks_added')
    END AS tasks_added,
    pause.message IS NOT NULL AS paused, CASE WHEN pause.held THEN pause.message END AS held_by
"""
"""What a running goal's `progress` has beyond the view's figures: the tasks added while it
ran (its `tasks_added` events), and a budget pause (the open `budget_spent` alert on the
goal, or on 'GOAL (held)' when another budget holds it back)."""


@router.get("/goals")
async def list_goals(
    pool: Pool,
    access: Reader,
    status: GoalStatus | None = None,
    workspace: str | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Goals the token may see, newest first, with their progress figures from the read
    model."""
    filters = (
        "($1::goal_status IS NULL OR status = $1) AND ($2::text IS NULL OR workspace = $2) "
        "AND ($3::text[] IS NULL OR workspace = ANY($3))"
    )
    total = await pool.fetchval(
        f"SELECT count(*) FROM goals WHERE {filters}", status, workspace, access.scope
    )
    # Page the goals first so the view aggregates only this page's tasks.
    rows = await pool.fetch(
        f"""
        WITH chosen AS (
            SELECT goal_id, title, workspace, status, created_at, ended_at, error, problem
            FROM goals WHERE {filters}
            ORDER BY created_at DESC, goal_id LIMIT $4 OFFSET $5
        )
        SELECT c.*, {_FIGURES}
        FROM chosen c JOIN goal_progress p USING (goal_id)
        ORDER BY c.created_at DESC, c.goal_id
        """,
        status,
        workspace,
        access.scope,
        limit,
        offset,
    )
    return page([dict(r) for r in rows], total, offset, limit)


@router.get("/goals/{goal_id:path}/tasks")
@answers(UNKNOWN_GOAL)
async def goal_tasks(
    pool: Pool,
    access: Reader,
    goal_id: str,
    status: TaskStatus | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    """A goal's tasks in plan order: status, agent, attempts, reworks, spend, dependencies."""
    filters = (
        "goal_id = $1 AND ($2::task_status IS NULL OR status = $2) AND ($5::text[] IS NULL "
        "OR EXISTS (SELECT 1 FROM goals g WHERE g.goal_id = $1 AND g.workspace = ANY($5)))"
    )
    # One round trip: the count and the page together, a row of NULLs when the page is empty.
    rows = await pool.fetch(
        f"""
        SELECT c.total, t.*
        FROM (SELECT count(*) AS total FROM tasks WHERE {filters}) c
        LEFT JOIN LATERAL (
            SELECT task_id, title, skill, status, agent_id, assignment_id::text, attempts,
                   reworks, cost_usd::float8, tokens_used, depends_on, requires_approval,
                   approvers, error, subgoal_id, started_at, ended_at, position
            FROM tasks WHERE {filters}
            ORDER BY position NULLS LAST, task_id LIMIT $3 OFFSET $4
        ) t ON true
        ORDER BY t.position NULLS LAST, t.task_id
        """,
        goal_id,
        status,
        limit,
        offset,
        access.scope,
    )
    total = rows[0]["total"]
    if total == 0:  # no such goal (that the token may see), or none of its tasks match
        await known_goal(pool, access, goal_id)
    items = [dict(r) for r in rows if r["task_id"] is not None]
    for item in items:
        del item["total"]
    return page(items, total, offset, limit)


@router.get("/goals/{goal_id:path}/tasks/{task_id}/result")
@answers(
    {
        404: "no goal of that id that the token may see, or no such task of it",
        409: "a result stored by reference that cannot be read",
    }
)
async def task_result(pool: Pool, access: Reader, goal_id: str, task_id: str) -> dict[str, Any]:
    """A task's result whole, one stored by reference resolved: what its approvers decide
    on, with the SHA-256 of the content (`content_digest`), which signatures bind."""
    await known_goal(pool, access, goal_id)  # another workspace's is the same 404
    row = await pool.fetchrow(
        "SELECT result FROM tasks WHERE goal_id = $1 AND task_id = $2", goal_id, task_id
    )
    if row is None:
        raise not_found("task", task_id, f"a task id from GET /api/v1/goals/{goal_id}/tasks")
    try:
        content = await resolve(pool, row["result"])
    except UnresolvedReference as exc:
        raise Problem(409, "Result unreadable", str(exc)) from None
    return {
        "goal_id": goal_id,
        "task_id": task_id,
        "result": row["result"],
        "content": content,
        "content_digest": digest(content),
    }


@router.get("/goals/{goal_id:path}/tasks/{task_id}/attempts")
@answers({404: "no goal of that id that the token may see, or no such task of it"})
async def task_attempts(
    request: Request,
    pool: Pool,
    access: Reader,
    goal_id: str,
    task_id: str,
    limit: Limit = 20,
    offset: Offset = 0,
) -> dict[str, Any]:
    """A task's attempts, the latest first: each with its agent, status, times and
    duration, tokens read and written, cost (`null`: unknown), error, trace id, its tool
    calls and notes, and the context it was given (secrets masked; one longer than
    CONTEXT_CHARS as its beginning, in `context_excerpt`)."""
    await known_goal(pool, access, goal_id)  # another workspace's is the same 404
    total = await pool.fetchval(
        "SELECT (SELECT count(*) FROM assignments WHERE goal_id = $1 AND task_id = $2) "
        "FROM tasks WHERE goal_id = $1 AND task_id = $2",
        goal_id,
        task_id,
    )
    if total is None:
        raise not_found("task", task_id, f"a task id from GET /api/v1/goals/{goal_id}/tasks")
    rows = await pool.fetch(
        """
        SELECT assignment_id::text, attempt, agent_id, status::text, created_at, ended_at,
               extract(epoch FROM ended_at - created_at)::float8 AS duration_seconds,
               tokens_used, input_tokens, output_tokens, cost_usd::float8, cost_known, error,
               context
        FROM assignments WHERE goal_id = $1 AND task_id = $2
        ORDER BY attempt DESC, created_at DESC, assignment_id LIMIT $3 OFFSET $4
        """,
        goal_id,
        task_id,
        limit,
        offset,
    )
    ids = [r["assignment_id"] for r in rows]
    calls = await pool.fetch(
        "SELECT assignment_id::text, n, tool, args_digest, duration_ms, outcome, error "
        "FROM tool_calls WHERE assignment_id = ANY($1::uuid[]) AND n <= $2 "
        "ORDER BY assignment_id, n",
        ids,
        MAX_TOOL_CALLS,
    )
    notes = await pool.fetch(
        "SELECT detail->>'assignment_id' AS assignment_id, (detail->>'number')::int AS number, "
        "message, created_at FROM events WHERE kind = 'agent_note' "
        "AND detail->>'assignment_id' = ANY($1::text[]) ORDER BY seq LIMIT $2",
        ids,
        MAX_NOTES_PER_ASSIGNMENT * max(len(ids), 1),
    )
    trace_url = getattr(request.app.state, "trace_url", None)
    items = []
    for row in rows:
        attempt = dict(row)
        if not attempt["cost_known"]:
            attempt["cost_usd"] = None  # unknown, not free
        context = attempt.pop("context")
        traced = context.get("traceparent") if isinstance(context, dict) else None
        attempt["trace_id"] = trace_id_of(traced)
        attempt["trace_url"] = (
            trace_url.replace("{trace_id}", attempt["trace_id"])
            if trace_url and attempt["trace_id"]
            else None
        )
        attempt["tool_calls"] = [
            {k: v for k, v in c.items() if k != "assignment_id"}
            for c in calls
            if c["assignment_id"] == row["assignment_id"]
        ]
        attempt["notes"] = [
            {k: v for k, v in n.items() if k != "assignment_id"}
            for n in notes
            if n["assignment_id"] == row["assignment_id"]
        ]
        attempt |= bounded_context(context)
        items.append(attempt)
    return {"goal_id": goal_id, "task_id": task_id, **page(items, total, offset, limit)}


CONTEXT_CHARS = 16_000
"""Characters of an attempt's context the API answers whole; past them, its beginning."""


def bounded_context(context: Any) -> dict[str, Any]:
    """The context an agent was given, secrets masked, as the attempts list answers it:
    whole (`context`) up to CONTEXT_CHARS of JSON, else its beginning as text
    (`context_excerpt`); `context_chars` says how long it was."""
    shown = masked_values(context)
    text = json.dumps(shown, indent=2, ensure_ascii=False)
    if len(text) <= CONTEXT_CHARS:
        return {"context": shown, "context_excerpt": None, "context_chars": len(text)}
    return {"context": None, "context_excerpt": text[:CONTEXT_CHARS], "context_chars": len(text)}


@router.get("/goals/{goal_id:path}/tasks/{task_id}")
@answers({404: "no goal of that id that the token may see, or no such task of it"})
async def one_task(pool: Pool, access: Reader, goal_id: str, task_id: str) -> dict[str, Any]:
    """One task: its row, its tokens read and written over all attempts, how many of its
    attempts' cost is unknown, and its latest attempt with that attempt's tool calls."""
    await known_goal(pool, access, goal_id)  # another workspace's is the same 404
    row = await pool.fetchrow(
        """
        SELECT t.task_id, t.title, t.skill, t.status, t.agent_id, t.assignment_id::text,
               t.attempts, t.reworks, t.cost_usd::float8, t.tokens_used, t.depends_on,
               t.requires_approval, t.approvers, t.error, t.subgoal_id, t.started_at,
               t.ended_at,
               (SELECT coalesce(sum(a.input_tokens), 0)::bigint FROM assignments a
                WHERE a.goal_id = t.goal_id AND a.task_id = t.task_id) AS input_tokens,
               (SELECT coalesce(sum(a.output_tokens), 0)::bigint FROM assignments a
                WHERE a.goal_id = t.goal_id AND a.task_id = t.task_id) AS output_tokens,
               (SELECT count(*) FROM assignments a WHERE a.goal_id = t.goal_id
                AND a.task_id = t.task_id AND NOT a.cost_known) AS cost_unknown_attempts
        FROM tasks t WHERE t.goal_id = $1 AND t.task_id = $2
        """,
        goal_id,
        task_id,
    )
    if row is None:
        raise not_found("task", task_id, f"a task id from GET /api/v1/goals/{goal_id}/tasks")
    latest = await pool.fetchrow(
        """
        SELECT assignment_id::text, attempt, agent_id, status::text, tokens_used,
               input_tokens, output_tokens, cost_usd::float8, cost_known, created_at, ended_at
        FROM assignments WHERE goal_id = $1 AND task_id = $2
        ORDER BY attempt DESC, created_at DESC LIMIT 1
        """,
        goal_id,
        task_id,
    )
    attempt: dict[str, Any] | None = None
    if latest is not None:
        attempt = dict(latest)
        if not attempt["cost_known"]:
            attempt["cost_usd"] = None  # unknown, not free
        calls = await pool.fetch(
            "SELECT n, tool, args_digest, duration_ms, outcome, error FROM tool_calls "
            "WHERE assignment_id = $1::uuid ORDER BY n",
            latest["assignment_id"],
        )
        attempt["tool_calls"] = [dict(c) for c in calls]
    return {"goal_id": goal_id, **dict(row), "latest_attempt": attempt}


@router.get("/goals/{goal_id:path}")
@answers(UNKNOWN_GOAL)
async def goal(
    pool: Pool,
    client: Temporal,
    access: Reader,
    goal_id: str,
    live: Annotated[
        bool, Query(description="a running goal's figures from its workflow's `progress` query")
    ] = False,
) -> dict[str, Any]:
    """One goal: status, stage, progress, counts, spend against budget, and when it ran.

    A running goal's figures come from the read model in one round trip, the same as its
    workflow's `progress` query once the workflow's writes are in; `live=true` asks the
    workflow itself (falling back to the read model if it is unreachable). An ended
    goal's figures come from its stored report. `source` says which.
    """
    row = await pool.fetchrow(
        f"""
        SELECT g.goal_id, g.title, g.description, g.workspace, g.status, g.error, g.approvers,
               g.created_at, g.ended_at, g.report, g.problem,
               coalesce(g.budget_usd::float8, (g.spec->>'budget_usd')::float8) AS budget_usd,
               coalesce(g.budget_tokens, (g.spec->>'budget_tokens')::bigint) AS budget_tokens,
               {_FIGURES}, {_STANDING}
        FROM goals g JOIN goal_progress p USING (goal_id)
        LEFT JOIN LATERAL (
            SELECT a.subject <> g.goal_id AS held, a.message FROM alerts a
            WHERE g.status = 'running' AND a.kind = 'budget_spent' AND a.resolved_at IS NULL
              AND a.subject IN (g.goal_id, g.goal_id || ' (held)')
            ORDER BY a.subject = g.goal_id DESC LIMIT 1
        ) pause ON true
        WHERE g.goal_id = $1 AND ($2::text[] IS NULL OR g.workspace = ANY($2))
        """,
        goal_id,
        access.scope,
    )
    if row is None:
        raise not_found("goal", goal_id, "a goal id from GET /api/v1/goals")
    found = dict(row)
    current, source = read_model_progress(found), "read_model"
    report = found.pop("report")
    body = {k: v for k, v in found.items() if k not in ("tasks_added", "paused", "held_by")}
    if row["status"] != GoalStatus.RUNNING and report is not None:
        current, source = Progress.model_validate(report["progress"]), "report"
    elif row["status"] == GoalStatus.RUNNING and live:
        try:
            current = await client.get_workflow_handle(goal_id).query(GoalWorkflow.progress)
            source = "workflow"
        except RPCError:
            pass  # the workflow is unreachable: the read model still answers
    body.update(current.model_dump(mode="json", exclude={"goal_id", "on_task_failure"}))
    if current.budget_usd is None:
        body["budget_usd"] = row["budget_usd"]
    if current.budget_tokens is None:
        body["budget_tokens"] = row["budget_tokens"]
    body["source"] = source
    return body


def read_model_progress(row: Mapping[str, Any]) -> Progress:
    """A goal's progress from its read-model row, by the workflow's own arithmetic."""
    counts = {
        TaskStatus.PENDING: row["tasks_pending"],
        TaskStatus.ASSIGNED: row["tasks_running"],
        TaskStatus.AWAITING_APPROVAL: row["tasks_awaiting_approval"],
        TaskStatus.COMPLETED: row["tasks_completed"],
        TaskStatus.FAILED: row["tasks_failed"],
        TaskStatus.SKIPPED: row["tasks_skipped"],
    }
    budget = None
    if row["budget_usd"] is not None or row["budget_tokens"] is not None:
        budget = BudgetState(usd=row["budget_usd"], tokens=row["budget_tokens"])
    status = GoalStatus(row["status"])
    stage = read_model_stage(
        row["goal_id"],
        status,
        awaiting_approval=row["tasks_awaiting_approval"],
        paused=row["paused"],
        held_by=row["held_by"],
        spent=budgets.describe(budget, row["cost_usd"], row["tokens_used"]) if budget else None,
    )
    return compute_progress(
        row["goal_id"],
        status,
        stage,
        counts,
        agents_total=row["agents_total"],
        agents_completed=row["agents_completed"],
        cost_usd=row["cost_usd"],
        tokens_used=row["tokens_used"],
        tasks_added=row["tasks_added"] or 0,
        budget=budget,
    )


def read_model_stage(
    goal_id: str,
    status: GoalStatus,
    *,
    awaiting_approval: int,
    paused: bool,
    held_by: str | None,
    spent: str | None,
) -> str:
    """A goal's stage as the read model can tell it: paused at a budget, waiting for
    approvers, or running; an ended goal's status. (The workflow's own stage, e.g. which
    task it is compiling, is in `live=true` and in its report.)"""
    if status is not GoalStatus.RUNNING:
        return str(status)
    if held_by is not None:
        why = held_by.removeprefix(f"goal {goal_id!r} paused: ")
        return f"paused: budget ({why}); assignments start again once it is raised"
    if paused:
        return (
            f"paused: budget ({spent or 'spent'}); waiting on a decision to raise it "
            "or stop the goal"
        )
    if awaiting_approval:
        return f"running: {awaiting_approval} awaiting approval"
    return "running"


async def known_goal(pool: Pool, access: Access, goal_id: str) -> str:
    """The workspace of a goal the token may see; an unknown goal, or one of another
    workspace, is the same 404, saying where the known ones are."""
    workspace: str | None = await pool.fetchval(
        "SELECT workspace FROM goals WHERE goal_id = $1 AND ($2::text[] IS NULL OR "
        "workspace = ANY($2))",
        goal_id,
        access.scope,
    )
    if workspace is None:
        raise not_found("goal", goal_id, "a goal id from GET /api/v1/goals")
    return workspace
