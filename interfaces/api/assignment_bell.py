"""One LISTEN for every agent waiting on the API for work: a single database connection
hears each agent's assignment notice and wakes that agent's long polls in this process.

A waiting agent therefore holds no database connection, and the connection is held only
while some agent waits. A notice lost with the connection costs at most one wait: each
poll reads the inbox again before it waits.
"""

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator

import anyio
import asyncpg

from activities.assignment import ASSIGNMENTS_CHANNEL
from store.listening import Listening

log = logging.getLogger("goalkeeper.api")


class AssignmentBell:
    """Wakes the agents told of a new assignment (the notice's payload is the agent id)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._listening = Listening(pool, ASSIGNMENTS_CHANNEL, self._ring, self._lost)
        self._waiting: defaultdict[str, set[asyncio.Event]] = defaultdict(set)
        self._lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def listening(self, agent_id: str) -> AsyncIterator[asyncio.Event]:
        """An event set whenever `agent_id` is told of an assignment, while inside."""
        rung = asyncio.Event()
        async with self._lock:
            await self._listening.start()
            self._waiting[agent_id].add(rung)
        try:
            yield rung
        finally:
            # Shielded: an agent's leaving cancels its poll, and with it every await here.
            with anyio.CancelScope(shield=True):
                async with self._lock:
                    waiting = self._waiting.get(agent_id)
                    if waiting is not None:
                        waiting.discard(rung)
                        if not waiting:
                            del self._waiting[agent_id]
                    if not self._waiting:
                        await self._listening.stop()

    def _ring(self, agent_id: str) -> None:
        for rung in self._waiting.get(agent_id, ()):
            rung.set()

    @property
    def waiting(self) -> frozenset[str]:
        """The agents waiting now."""
        return frozenset(self._waiting)

    def ring_all(self) -> None:
        """Wake every waiting agent: each reads its inbox again, and sees why it was woken."""
        for waiting in self._waiting.values():
            for rung in waiting:
                rung.set()

    def _lost(self) -> None:
        log.warning("the assignment listener's connection was lost; waiting agents poll again")
        self.ring_all()
