"""Fault tests' shared parts: goals driven through a disruption, and what is checked after."""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from temporalio.client import Client, WorkflowHandle

from goalkeeper.models import GoalReport
from goalkeeper.statuses import GoalStatus
from tests.helpers import SimulatedAgents, wait_progress


async def through_disruption(
    client: Client,
    pool: asyncpg.Pool,
    handles: list[WorkflowHandle[Any, GoalReport]],
    disrupt: Callable[[], Awaitable[None]],
    approver: str | None = None,
) -> list[GoalReport]:
    """Drive the goals with simulated agents, disrupt once they are under way, await reports."""
    async with contextlib.AsyncExitStack() as stack:
        for handle in handles:
            await stack.enter_async_context(
                SimulatedAgents(client, pool, handle.id, approver=approver, delay=0.2)
            )
        await wait_progress(handles[0], lambda p: p.tasks_completed >= 1)
        await disrupt()
        return list(await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), 240))


async def assert_nothing_lost_or_duplicated(pool: asyncpg.Pool, reports: list[GoalReport]) -> None:
    for report in reports:
        goal_id = report.goal_id
        assert report.status is GoalStatus.COMPLETED, report.error
        assert report.progress.progress_percentage == 100.0
        completions = await pool.fetch(
            "SELECT task_id, count(*) AS n FROM events WHERE goal_id = $1 "
            "AND (kind = 'task_completed' OR (kind = 'decision_accepted' AND message LIKE "
            "'%approved by%')) GROUP BY task_id",
            goal_id,
        )
        assert {r["task_id"]: r["n"] for r in completions} == {t.task_id: 1 for t in report.tasks}
        duplicates = await pool.fetchval(
            "SELECT count(*) FROM (SELECT 1 FROM events WHERE goal_id = $1 "
            "GROUP BY kind, task_id, message HAVING count(*) > 1) d",
            goal_id,
        )
        assert duplicates == 0
        assignments = await pool.fetch(
            "SELECT task_id, count(*) AS n FROM assignments WHERE goal_id = $1 GROUP BY task_id",
            goal_id,
        )
        assert {r["task_id"]: r["n"] for r in assignments} == {
            t.task_id: t.attempts for t in report.tasks
        }
        row = await pool.fetchrow("SELECT * FROM goal_progress WHERE goal_id = $1", goal_id)
        assert row is not None and row["status"] == "completed"
        for field in ("tasks_completed", "tasks_total", "progress_percentage", "tokens_used"):
            assert row[field] == getattr(report.progress, field), field
        assert (
            await pool.fetchval(
                "SELECT count(*) FROM tasks WHERE goal_id = $1 AND status <> 'completed'", goal_id
            )
            == 0
        )
