"""A goal's report says how long each task took, from the task's own start and end."""

import asyncpg
from temporalio.client import Client

from goalkeeper.statuses import GoalStatus
from interfaces.cli.goals import describe_report
from tests.helpers import SimulatedAgents, goal_spec, start_goal


async def test_the_report_gives_each_task_its_time(
    client: Client, task_queue: str, workspace: str, pool: asyncpg.Pool
) -> None:
    handle = await start_goal(client, goal_spec(2, workspace), task_queue)

    def fails_once(task_id: str, attempt: int) -> str:
        """t1's first attempt fails: its time runs on to its second attempt's end."""
        return "failed" if (task_id, attempt) == ("t1", 1) else "completed"

    async with SimulatedAgents(client, pool, handle.id, fails_once, delay=0.3):
        report = await handle.result()
    assert report.status is GoalStatus.COMPLETED
    rows = {
        r["task_id"]: r
        for r in await pool.fetch(
            "SELECT task_id, started_at, ended_at FROM tasks WHERE goal_id = $1", handle.id
        )
    }
    for task in report.tasks:
        row = rows[task.task_id]
        expected = (row["ended_at"] - row["started_at"]).total_seconds()
        assert task.duration_seconds is not None, f"expected a time for {task.task_id}, got none"
        assert task.duration_seconds >= 0.3
        assert abs(task.duration_seconds - expected) < 0.5, (
            f"expected about {expected}s for {task.task_id}, got {task.duration_seconds}s"
        )
    t1 = next(t for t in report.tasks if t.task_id == "t1")
    assert t1.attempts == 2 and t1.duration_seconds is not None and t1.duration_seconds >= 0.6
    text = describe_report(report)
    assert f"{t1.duration_seconds:.1f}s" in text
