"""Compiling a goal's deliverable from its tasks' results (read back with `store.deliverables`)."""

import asyncpg
from temporalio import activity

from goalkeeper.compiling import Verdict
from goalkeeper.deliverables import Document, TaskOutcome
from goalkeeper.records import CompileDeliverable, LoadVerdict
from store.deliverables import compiled
from store.results import failing_visibly, resolve

PAGE = 500
"""Tasks read per query while compiling: memory stays flat for goals of any size."""


class DeliverableActivities:
    """Compiles deliverables; holds the worker's connection pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @activity.defn
    async def compile_deliverable(self, request: CompileDeliverable) -> int:
        """Write the goal's document of results (plan order) and return its size in bytes.

        A result whose reference cannot be resolved fails the compile for good, naming it.
        """
        with failing_visibly():
            return await self._compile(request)

    async def _compile(self, request: CompileDeliverable) -> int:
        goal = await self.pool.fetchrow(
            "SELECT title, description FROM goals WHERE goal_id = $1 AND first_run_id = $2",
            request.goal_id,
            request.goal_run_id,
        )
        if goal is None:
            return 0  # a newer goal of the same id replaced this one
        by_agent = await compiled(self.pool, request.goal_id)
        if by_agent is not None:  # an agent compiled it: its deliverable is the goal's
            return await self._store(request, by_agent.deliverable)
        total, completed = await self.pool.fetchrow(
            "SELECT count(*), count(*) FILTER (WHERE status = 'completed') "
            "FROM tasks WHERE goal_id = $1",
            request.goal_id,
        ) or (0, 0)
        document = Document(goal["title"], goal["description"], completed, total)
        after = -1
        while True:  # a page at a time, each result resolved, rendered and let go
            rows = await self.pool.fetch(
                """
                SELECT position, task_id, title, status::text, agent_id, result, error
                FROM tasks WHERE goal_id = $1 AND position > $2 ORDER BY position LIMIT $3
                """,
                request.goal_id,
                after,
                PAGE,
            )
            for row in rows:
                outcome = TaskOutcome(
                    row["task_id"],
                    row["title"],
                    row["status"],
                    row["agent_id"],
                    await resolve(self.pool, row["result"])
                    if row["status"] == "completed" and not document.full
                    else None,  # the document shows no other result
                    row["error"],
                )
                document.add(outcome)
            if len(rows) < PAGE:
                break
            after = rows[-1]["position"]
        return await self._store(request, document.text())

    @activity.defn
    async def load_verdict(self, request: LoadVerdict) -> Verdict | None:
        """Whether the compile task found the success criteria met, and why (not the
        deliverable itself, which may be large)."""
        with failing_visibly():
            by_agent = await compiled(self.pool, request.goal_id, request.task_id)
        return None if by_agent is None else Verdict(met=by_agent.met, reasons=by_agent.reasons)

    async def _store(self, request: CompileDeliverable, body: str) -> int:
        size = len(body.encode())
        await self.pool.execute(
            """
            INSERT INTO deliverables (goal_id, goal_run_id, body, bytes) VALUES ($1, $2, $3, $4)
            ON CONFLICT (goal_id) DO UPDATE SET goal_run_id = EXCLUDED.goal_run_id,
                body = EXCLUDED.body, bytes = EXCLUDED.bytes, created_at = now()
            """,
            request.goal_id,
            request.goal_run_id,
            body,
            size,
        )
        return size
