"""The agent registry: agents announce themselves here and find their assignments here."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from goalkeeper.errors import GoalkeeperError
from goalkeeper.learning import AgentRecord
from goalkeeper.signing import check_public_key


class RegistrationRefused(GoalkeeperError):
    """A registration only an operator may make: another login's agent, a provisioned one,
    or a new key or operator for an agent that has one."""


async def register_agent(
    pool: asyncpg.Pool,
    agent_id: str,
    workspace: str,
    skills: Sequence[str],
    capacity: int = 1,
    config: dict[str, Any] | None = None,
    public_key: str | None = None,
    operator: str | None = None,
) -> None:
    """Add the agent, or bring it back: an offline or unresponsive agent becomes available.

    `config` is what the agent works with (model, prompt, tools: whatever its runner
    reads); agents provisioned for a skill start with that of its best-recorded agent.
    None keeps the configuration a returning agent had. `public_key` (base64 Ed25519) and
    `operator` (who runs the agent) are set by the first registration that gives them and
    kept after; a different one raises `RegistrationRefused`, as does registering an agent
    that another agent login registered (store/schema_roles.sql).
    """
    if capacity < 1:
        raise ValueError(f"capacity must be at least 1, got {capacity}")
    if not skills:
        raise ValueError(f"agent {agent_id!r} needs at least one skill, got none")
    if config is not None and not isinstance(config, dict):
        raise ValueError(f"agent {agent_id!r} config must be a JSON object, got {config!r}")
    if public_key is not None:
        check_public_key(public_key)
    try:
        await pool.execute(
            "SELECT goalkeeper_register_agent($1, $2, $3, $4, $5, $6, $7)",
            agent_id,
            workspace,
            list(skills),
            capacity,
            config,
            public_key,
            operator,
        )
    except asyncpg.InsufficientPrivilegeError as exc:
        raise RegistrationRefused(str(exc)) from None


async def take_offline(pool: asyncpg.Pool, agent_ids: Sequence[str]) -> None:
    """Mark agents offline so they get no new work; their running assignments stay theirs."""
    await pool.execute("SELECT goalkeeper_take_offline($1)", list(agent_ids))


async def list_agents(pool: asyncpg.Pool, workspace: str | None = None) -> list[asyncpg.Record]:
    return await pool.fetch(
        """
        SELECT agent_id, workspace, skills, status, capacity, active_assignments, provisioned,
               last_seen_at, config, config_from, login_role
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
    """Active assignments of the given agents, and of provisioned agents in a workspace.

    An agent login sees only those of agents it registered, and of provisioned agents.
    """
    return await pool.fetch(
        "SELECT * FROM goalkeeper_inbox($1, $2)", list(agent_ids), adopt_in_workspace
    )


async def heartbeat(
    pool: asyncpg.Pool,
    agent_id: str,
    assignment_id: str,
    signature: str | None = None,
    at: datetime | None = None,
) -> datetime | None:
    """Record that the agent still works on its assignment: when it wrote, or None if it no
    longer holds it.

    `at` is the time the agent signed with `signature` (goalkeeper.signing); without it,
    the database's clock. A time more than a minute ahead of that clock is refused.
    """
    written: datetime | None = await pool.fetchval(
        "SELECT goalkeeper_heartbeat($1, $2::uuid, $3, $4)",
        agent_id,
        assignment_id,
        signature,
        at,
    )
    return written


async def claim_provisioned(pool: asyncpg.Pool, agent_id: str, public_key: str) -> bool:
    """Give a provisioned agent this runner's key for it, unless it has one; True if the
    agent's key is now this one (so its reports, signed with it, count)."""
    claimed: bool = await pool.fetchval(
        "SELECT goalkeeper_claim_provisioned($1, $2)", agent_id, check_public_key(public_key)
    )
    return claimed
