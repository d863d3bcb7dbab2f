"""The agent registry: agents announce themselves here and find their assignments here."""

import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from activities.rows import insert_event
from goalkeeper.learning import AgentRecord
from goalkeeper.records import Event, EventKind


async def register_agent(
    pool: asyncpg.Pool,
    agent_id: str,
    workspace: str,
    skills: Sequence[str],
    capacity: int = 1,
    config: dict[str, Any] | None = None,
) -> None:
    """Add the agent, or bring it back: an offline or unresponsive agent becomes available.

    `config` is what the agent works with (model, prompt, tools: whatever its runner
    reads); agents provisioned for a skill start with that of its best-recorded agent.
    None keeps the configuration a returning agent had.
    """
    if capacity < 1:
        raise ValueError(f"capacity must be at least 1, got {capacity}")
    if not skills:
        raise ValueError(f"agent {agent_id!r} needs at least one skill, got none")
    if config is not None and not isinstance(config, dict):
        raise ValueError(f"agent {agent_id!r} config must be a JSON object, got {config!r}")
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(
            """
            INSERT INTO agents (agent_id, workspace, skills, capacity, last_seen_at, config)
            VALUES ($1, $2, $3, $4, now(), coalesce($5::jsonb, '{}'))
            ON CONFLICT (agent_id) DO UPDATE SET
                workspace = EXCLUDED.workspace, skills = EXCLUDED.skills,
                capacity = greatest(EXCLUDED.capacity, agents.active_assignments),
                status = CASE WHEN agents.active_assignments > 0 THEN 'busy'::agent_status
                              ELSE 'available'::agent_status END,
                last_seen_at = now(),
                config = coalesce($5::jsonb, agents.config),
                config_from = CASE WHEN $5::jsonb IS NULL THEN agents.config_from END
            """,
            agent_id,
            workspace,
            list(skills),
            capacity,
            config,
        )
        await insert_event(
            connection,
            Event(
                event_id=str(uuid.uuid4()),
                kind=EventKind.AGENT_REGISTERED,
                agent_id=agent_id,
                message=f"agent {agent_id!r} registered in workspace {workspace!r} "
                f"with skills {', '.join(skills)} (capacity {capacity})",
            ),
        )


async def take_offline(pool: asyncpg.Pool, agent_ids: Sequence[str]) -> None:
    """Mark agents offline so they get no new work; their running assignments stay theirs."""
    await pool.execute(
        "UPDATE agents SET status = 'offline' WHERE agent_id = ANY($1::text[])", list(agent_ids)
    )


async def list_agents(pool: asyncpg.Pool, workspace: str | None = None) -> list[asyncpg.Record]:
    return await pool.fetch(
        """
        SELECT agent_id, workspace, skills, status, capacity, active_assignments, provisioned,
               last_seen_at, config, config_from
        FROM agents WHERE $1::text IS NULL OR workspace = $1 ORDER BY workspace, agent_id
        """,
        workspace,
    )


async def agent_records(
    pool: asyncpg.Pool, workspace: str | None = None
) -> dict[str, dict[str, AgentRecord]]:
    """Each agent's record per skill it has one for: agent id -> skill -> record."""
    rows = await pool.fetch(
        """
        SELECT r.* FROM agent_records r JOIN agents g USING (agent_id)
        WHERE $1::text IS NULL OR g.workspace = $1 ORDER BY r.agent_id, r.skill
        """,
        workspace,
    )
    records: dict[str, dict[str, AgentRecord]] = {}
    for row in rows:
        records.setdefault(row["agent_id"], {})[row["skill"]] = AgentRecord.from_counts(dict(row))
    return records


async def active_assignments(
    pool: asyncpg.Pool, agent_ids: Sequence[str], adopt_in_workspace: str | None = None
) -> list[asyncpg.Record]:
    """Active assignments of the given agents, and of provisioned agents in a workspace."""
    return await pool.fetch(
        """
        SELECT a.assignment_id::text AS assignment_id, a.goal_id, a.task_id, a.agent_id,
               a.attempt, a.context, g.config
        FROM assignments a JOIN agents g USING (agent_id)
        WHERE a.status = 'active'
          AND (a.agent_id = ANY($1::text[]) OR (g.provisioned AND g.workspace = $2))
        ORDER BY a.created_at
        """,
        list(agent_ids),
        adopt_in_workspace,
    )


async def heartbeat(pool: asyncpg.Pool, agent_id: str, assignment_id: str) -> bool:
    """Record that the agent still works on its assignment; False if it no longer holds it."""
    held = await pool.fetchval(
        """
        UPDATE assignments SET last_heartbeat_at = now()
        WHERE assignment_id = $1::uuid AND agent_id = $2 AND status = 'active'
        RETURNING true
        """,
        assignment_id,
        agent_id,
    )
    return bool(held)
