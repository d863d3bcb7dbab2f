"""The worker killed with SIGKILL mid-goal: the goal completes, nothing lost or duplicated."""

import asyncio
import signal
import uuid
from pathlib import Path

import asyncpg
from temporalio.client import Client

from goalkeeper.stack import TemporalDevServer
from goalkeeper.statuses import GoalStatus
from tests.helpers import SimulatedAgents, one_row, start_goal, start_worker_process, wait_progress


async def test_the_goal_completes_after_the_worker_is_killed(
    client: Client,
    pool: asyncpg.Pool,
    temporal_server: TemporalDevServer,
    database_url: str,
    workspace: str,
    tmp_path: Path,
) -> None:
    queue = f"restart-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "worker.log"
    worker = await start_worker_process(temporal_server, database_url, queue, log)
    spec = {
        "title": "Survive a crash",
        "workspace": workspace,
        "approvers": ["ops-lead"],
        "max_running_tasks": 2,
        "tasks": [
            {"id": f"t{i}", "title": f"T{i}", "skill": "data", "requires_approval": i % 3 == 0}
            for i in range(8)
        ],
    }
    handle = await start_goal(client, spec, queue)
    try:
        async with SimulatedAgents(client, pool, handle.id, approver="ops-lead", delay=0.2):
            await wait_progress(handle, lambda p: p.tasks_completed >= 3, timeout=60)
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            await asyncio.sleep(1)
            worker = await start_worker_process(temporal_server, database_url, queue, log)
            report = await asyncio.wait_for(handle.result(), 120)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()

    assert report.status is GoalStatus.COMPLETED
    assert report.progress.progress_percentage == 100.0 and report.progress.tasks_completed == 8

    completions = await pool.fetch(
        "SELECT task_id, count(*) AS n FROM events WHERE goal_id = $1 "
        "AND kind IN ('task_completed', 'decision_accepted') AND message NOT LIKE '%rework%' "
        "GROUP BY task_id",
        handle.id,
    )
    assert {r["task_id"]: r["n"] for r in completions} == {f"t{i}": 1 for i in range(8)}
    duplicates = await pool.fetchval(
        "SELECT count(*) FROM (SELECT kind, task_id, message FROM events WHERE goal_id = $1 "
        "GROUP BY kind, task_id, message HAVING count(*) > 1) d",
        handle.id,
    )
    assert duplicates == 0
    assignments = await pool.fetch(
        "SELECT task_id, count(*) AS n FROM assignments WHERE goal_id = $1 GROUP BY task_id",
        handle.id,
    )
    assert {r["task_id"]: r["n"] for r in assignments} == {
        t.task_id: t.attempts for t in report.tasks
    }
    tasks = await pool.fetch("SELECT status, agent_id FROM tasks WHERE goal_id = $1", handle.id)
    assert all(t["status"] == "completed" and t["agent_id"] for t in tasks)
    busy = await pool.fetchval(
        "SELECT coalesce(sum(active_assignments), 0) FROM agents WHERE workspace = $1", workspace
    )
    assert busy == 0
    progress_row = await one_row(pool, "SELECT * FROM goal_progress WHERE goal_id = $1", handle.id)
    assert progress_row["progress_percentage"] == 100.0 and progress_row["status"] == "completed"
