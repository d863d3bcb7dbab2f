"""What workflows read of agents' and approvers' public keys before they verify signatures."""

import asyncpg
from temporalio import activity

from goalkeeper.models import ControlSigners
from goalkeeper.signing import Signers


class KeyActivities:
    """What a task reads before it may verify approvers' signatures."""

    def __init__(self, pool: asyncpg.Pool, require_signatures: bool = False) -> None:
        self.pool = pool
        self.require_signatures = require_signatures
        """Whether goals that do not say require signatures (the worker's default)."""

    @activity.defn
    async def approver_keys(self, approvers: list[str]) -> Signers:
        """The current keys of `approvers`, and every delegate's (the dashboard's)."""
        rows = await self.pool.fetch(
            """
            SELECT approver, public_key, delegate FROM approver_keys
            WHERE replaced_at IS NULL AND (approver = ANY($1::text[]) OR delegate)
            """,
            approvers,
        )
        return Signers(
            approver_keys={r["approver"]: r["public_key"] for r in rows if not r["delegate"]},
            delegate_keys={r["approver"]: r["public_key"] for r in rows if r["delegate"]},
        )

    @activity.defn
    async def control_signers(self, request: ControlSigners) -> Signers:
        """Whether a goal requires signed changes, and the current keys of those who may
        make them: its approvers, delegates (the dashboard's) and the named agents."""
        required = request.require_signatures
        if required is None:
            required = self.require_signatures
        if not required:
            return Signers(required=False)
        signers = await self.approver_keys(request.approvers)
        rows = await self.pool.fetch(
            "SELECT agent_id, public_key FROM agents "
            "WHERE agent_id = ANY($1::text[]) AND public_key IS NOT NULL",
            request.agents,
        )
        signers.agent_keys = {r["agent_id"]: r["public_key"] for r in rows}
        signers.required = True
        return signers

    @activity.defn
    async def agent_key(self, agent_id: str) -> str | None:
        """An agent's public key now: for agents given one after their assignment (a
        provisioned agent, claimed by the runner that adopts it)."""
        key: str | None = await self.pool.fetchval(
            "SELECT public_key FROM agents WHERE agent_id = $1", agent_id
        )
        return key
