"""How an agent runner reaches Goalkeeper: the `Transport` the runner's logic is written
against, and `DatabaseTransport`, which reads assignments from PostgreSQL (woken by
NOTIFY) and reports to the task workflows through Temporal."""

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

import asyncpg
from temporalio.client import (
    Client,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.service import RPCError

from activities.assignment import ASSIGNMENTS_CHANNEL
from interfaces.agents import registry
from store import notes, results, token_rates

log = logging.getLogger("goalkeeper.agent")

Row = Mapping[str, Any]
"""An active assignment: `assignment_id`, `agent_id`, `goal_id`, `task_id`, `attempt`,
`context`, `config`."""


class Transport(Protocol):
    """What a runner needs of Goalkeeper, however it reaches it."""

    async def open(self) -> None:
        """Connect (or listen) before the first call."""
        ...

    async def close(self) -> None:
        """Let go of what `open` took."""
        ...

    async def assignments(
        self, agent_ids: Sequence[str], adopt_in: str | None, known: Sequence[str]
    ) -> list[Row]:
        """The active assignments, once one is not in `known` (or a while has passed)."""
        ...

    async def heartbeat(
        self,
        goal_id: str,
        task_id: str,
        agent_id: str,
        assignment_id: str,
        at: datetime,
        signature: str | None,
    ) -> bool:
        """Say the agent still works on it; False once the assignment is no longer its."""
        ...

    async def by_reference(self, assignment_id: str, result: Any) -> Any:
        """The result to report: itself if small, else a reference to it, stored."""
        ...

    async def report(self, goal_id: str, task_id: str, report: dict[str, Any]) -> bool:
        """Report; False (logged) when the report was refused or could not be sent."""
        ...

    async def resolve(self, value: Any) -> Any:
        """A dependency's result as the work needs it: the content behind a reference."""
        ...

    async def claim_provisioned(self, agent_id: str, public_key: str) -> bool:
        """Give a provisioned agent this runner's key; True if it is the agent's key now."""
        ...

    async def note(self, assignment_id: str, agent_id: str, text: str) -> None:
        """Post the agent's note on its assignment; raises naming why it was refused."""
        ...

    async def token_rate(self, agent_id: str, provider: str, tokens: int) -> float:
        """Spend `tokens` of `provider` under the agent's workspace's shared rate: 0 once
        granted (or where no limit is set), else the seconds to wait before asking again;
        raises `RateRefused` naming why it never could."""
        ...


class DatabaseTransport:
    """PostgreSQL for assignments, heartbeats and stored results; Temporal for reports.

    Inboxes are read again on NOTIFY, and every `sweep_interval` seconds in any case.
    """

    def __init__(self, client: Client, pool: asyncpg.Pool, sweep_interval: float) -> None:
        self.client, self.pool, self.sweep_interval = client, pool, sweep_interval
        self._wake = asyncio.Event()
        self._listener: Any = None

    async def open(self) -> None:
        self._listener = await self.pool.acquire()
        await self._listener.add_listener(ASSIGNMENTS_CHANNEL, self._woken)
        self._wake.set()  # the first call reads at once

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.remove_listener(ASSIGNMENTS_CHANNEL, self._woken)
            await self.pool.release(self._listener)
            self._listener = None

    def _woken(self, *_: object) -> None:
        self._wake.set()

    async def assignments(
        self, agent_ids: Sequence[str], adopt_in: str | None, known: Sequence[str]
    ) -> list[Row]:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.sweep_interval)
        self._wake.clear()  # before the read, so a wake-up during it is not lost
        rows = await registry.active_assignments(self.pool, agent_ids, adopt_in)
        return [dict(row) for row in rows]

    async def heartbeat(
        self,
        goal_id: str,
        task_id: str,
        agent_id: str,
        assignment_id: str,
        at: datetime,
        signature: str | None,
    ) -> bool:
        # Kept beside the assignment as the task reads it at its deadline.
        kept = (
            None
            if signature is None
            else json.dumps({"at": at.isoformat(), "signature": signature})
        )
        held = await registry.heartbeat(self.pool, agent_id, assignment_id, kept, at)
        return held is not None

    async def by_reference(self, assignment_id: str, result: Any) -> Any:
        return await results.by_reference(self.pool, assignment_id, result)

    async def report(self, goal_id: str, task_id: str, report: dict[str, Any]) -> bool:
        handle = self.client.get_workflow_handle(f"{goal_id}/{task_id}")
        try:
            await handle.execute_update("report", report)
        except WorkflowUpdateRPCTimeoutOrCancelledError:
            # No answer in time (a busy worker): send it as a signal; a repeat is harmless.
            await handle.signal("agent_report", report)
        except WorkflowUpdateFailedError as exc:
            log.warning(
                "agent %s: report on %s/%s rejected: %s",
                report["agent_id"],
                goal_id,
                task_id,
                exc.cause,
            )
            return False
        except RPCError as exc:  # the task ended meanwhile: nothing left to tell
            log.warning(
                "agent %s could not report on %s/%s: %s", report["agent_id"], goal_id, task_id, exc
            )
            return False
        return True

    async def resolve(self, value: Any) -> Any:
        return await results.resolve(self.pool, value)

    async def claim_provisioned(self, agent_id: str, public_key: str) -> bool:
        return await registry.claim_provisioned(self.pool, agent_id, public_key)

    async def note(self, assignment_id: str, agent_id: str, text: str) -> None:
        await notes.post_note(self.pool, agent_id, assignment_id, text)

    async def token_rate(self, agent_id: str, provider: str, tokens: int) -> float:
        return await token_rates.spend_tokens(self.pool, agent_id, provider, tokens)
