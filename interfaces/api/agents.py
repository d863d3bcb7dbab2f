"""Agents with their load and per-skill records, and the tasks awaiting approvers."""

from typing import Any

from fastapi import APIRouter

from interfaces.api.auth import Reader
from interfaces.api.state import Limit, Offset, Pool, page
from interfaces.cli.queries import awaiting_approval

router = APIRouter()

MAX_HOLDING_SHOWN = 20
"""Active assignments listed per agent: an agent's capacity may be up to 100."""


@router.get("/agents", tags=["agents"])
async def list_agents(
    pool: Pool,
    access: Reader,
    workspace: str | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Agents of the token's workspaces by id: status, load against capacity, skills, how
    each skill went for them, and what each holds right now (its active assignments, the
    oldest first, at most 20)."""
    filters = "($1::text IS NULL OR workspace = $1) AND ($2::text[] IS NULL OR workspace = ANY($2))"
    total = await pool.fetchval(
        f"SELECT count(*) FROM agents WHERE {filters}", workspace, access.scope
    )
    rows = await pool.fetch(
        f"""
        SELECT a.agent_id, a.workspace, a.status, a.skills, a.capacity, a.active_assignments,
               a.provisioned, a.registered_at, a.last_seen_at, a.last_assigned_at,
               coalesce((
                   SELECT jsonb_agg(jsonb_build_object(
                       'skill', r.skill, 'first_tries', r.first_tries,
                       'first_try_completions', r.first_try_completions,
                       'completions', r.completions, 'failures', r.failures,
                       'lapses', r.lapses, 'reworks', r.reworks,
                       'ratings_good', r.ratings_good, 'ratings_bad', r.ratings_bad
                   ) ORDER BY r.skill)
                   FROM agent_records r WHERE r.agent_id = a.agent_id
               ), '[]'::jsonb) AS records,
               coalesce((
                   SELECT jsonb_agg(jsonb_build_object(
                       'goal_id', h.goal_id, 'task_id', h.task_id, 'title', h.title,
                       'attempt', h.attempt, 'since', h.created_at,
                       'last_heartbeat_at', h.last_heartbeat_at
                   ) ORDER BY h.created_at)
                   FROM (SELECT s.goal_id, s.task_id, t.title, s.attempt, s.created_at,
                                s.last_heartbeat_at
                         FROM assignments s JOIN tasks t USING (goal_id, task_id)
                         WHERE s.agent_id = a.agent_id AND s.status = 'active'
                         ORDER BY s.created_at LIMIT $5) h
               ), '[]'::jsonb) AS holding
        FROM agents a
        WHERE {filters}
        ORDER BY a.agent_id LIMIT $3 OFFSET $4
        """,
        workspace,
        access.scope,
        limit,
        offset,
        MAX_HOLDING_SHOWN,
    )
    items = [{**dict(r), "load": r["active_assignments"] / r["capacity"]} for r in rows]
    return page(items, total, offset, limit)


@router.get("/approvals", tags=["approvals"])
async def approvals(
    pool: Pool, access: Reader, approver: str | None = None, limit: Limit = 50
) -> dict[str, Any]:
    """Tasks of the token's workspaces waiting for a decision, oldest first; those
    `approver` may decide on if named.

    Each has the result as reported (`result`, what a decision signs), the SHA-256 of its
    content (`content_digest`) and the content; of a result stored by reference, a preview,
    with `content_url` serving the whole."""
    return {"items": await awaiting_approval(pool, approver, limit, access.scope)}
