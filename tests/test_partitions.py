"""Large goals run as a tree: partitions of tasks in dependency order, counts rolled up."""

import uuid

import asyncpg
import pytest
from temporalio.client import Client, WorkflowFailureError

from goalkeeper.models import TaskPage
from goalkeeper.statuses import GoalStatus, TaskStatus
from interfaces.starting import store_spec
from store.paging import goal_tasks
from tests.helpers import (
    SimulatedAgents,
    events,
    new_goal_id,
    progress,
    start_goal,
    wait_progress,
)
from workflows.goal import GoalWorkflow


def _spec(workspace: str, n: int, size: int, **fields: object) -> dict[str, object]:
    """`n` tasks listed in reverse, each depending on the task 7 before it."""
    tasks = [
        {
            "id": f"t{i}",
            "title": f"Task {i}",
            "skill": "data",
            "depends_on": [f"t{i - 7}"] if i >= 7 else [],
        }
        for i in reversed(range(n))
    ]
    return {
        "title": "Partitioned goal",
        "workspace": workspace,
        "partition_size": size,
        "max_running_tasks": 8,
        "tasks": tasks,
        **fields,
    }


async def test_a_large_goal_runs_in_partitions_with_exact_progress(
    client: Client, task_queue: str, workspace: str, pool: asyncpg.Pool
) -> None:
    handle = await start_goal(client, _spec(workspace, 23, 5), task_queue)
    seen: list[float] = []
    async with SimulatedAgents(client, pool, handle.id):
        while (now := await progress(handle)).status is GoalStatus.RUNNING:
            if now.stage != "validating":
                assert now.tasks_total == 23, now
                seen.append(now.progress_percentage)
        report = await handle.result()
    assert seen == sorted(seen), f"progress went backwards: {seen}"
    assert report.status is GoalStatus.COMPLETED
    assert report.progress.tasks_completed == 23 and report.progress.tokens_used == 230
    page: TaskPage = await handle.query("tasks", result_type=TaskPage)
    assert page.partitions == [f"{handle.id}#partition-{n}" for n in range(5)]
    listed = await goal_tasks(client, handle.id)
    assert sorted(t.task_id for t in listed) == sorted(f"t{i}" for i in range(23))
    assert all(t.status is TaskStatus.COMPLETED and t.agent_id for t in listed)
    # Every task ran after the task it depends on completed.
    rows = await pool.fetch(
        "SELECT task_id, started_at, ended_at FROM tasks WHERE goal_id = $1", handle.id
    )
    at = {r["task_id"]: r for r in rows}
    for i in range(7, 23):
        assert at[f"t{i}"]["started_at"] >= at[f"t{i - 7}"]["ended_at"]


async def test_a_lost_task_skips_its_dependents_in_later_partitions(
    client: Client, task_queue: str, workspace: str, pool: asyncpg.Pool
) -> None:
    spec = _spec(workspace, 20, 4, max_attempts=1)

    def outcome(task_id: str, attempt: int) -> str:
        return "failed" if task_id == "t2" else "completed"

    handle = await start_goal(client, spec, task_queue)
    async with SimulatedAgents(client, pool, handle.id, outcome=outcome):
        report = await handle.result()
    assert report.status is GoalStatus.FAILED
    lost = {"t2", "t9", "t16"}  # t9 depends on t2, t16 on t9
    assert report.progress.tasks_failed == 1 and report.progress.tasks_skipped == 2
    assert report.progress.tasks_completed == 20 - len(lost)
    skipped = {r["task_id"] for r in await events(pool, handle.id, "task_skipped")}
    assert skipped == {"t9", "t16"}


async def test_fail_goal_stops_every_partition(
    client: Client, task_queue: str, workspace: str, pool: asyncpg.Pool
) -> None:
    spec = _spec(workspace, 30, 5, max_attempts=1, on_task_failure="fail_goal")

    def outcome(task_id: str, attempt: int) -> str:
        return "failed" if task_id == "t0" else "completed"

    handle = await start_goal(client, spec, task_queue)
    async with SimulatedAgents(client, pool, handle.id, outcome=outcome, delay=0.05):
        await wait_progress(handle, lambda p: p.status is not GoalStatus.RUNNING)
    final = await progress(handle)
    assert final.status is GoalStatus.FAILED
    assert final.tasks_total == 30 and final.tasks_failed == 1
    assert final.tasks_completed + final.tasks_skipped + final.tasks_failed == 30
    assert final.tasks_skipped > 0
    pending = await pool.fetchval(
        "SELECT count(*) FROM tasks WHERE goal_id = $1 AND status IN ('pending', 'assigned')",
        handle.id,
    )
    assert pending == 0


async def test_a_spec_stored_by_reference_runs_and_a_bad_one_is_rejected(
    client: Client, task_queue: str, workspace: str, pool: asyncpg.Pool
) -> None:
    spec_ref = await store_spec(pool, _spec(workspace, 12, 5))
    handle = await client.start_workflow(
        GoalWorkflow.run, {"spec_ref": spec_ref}, id=new_goal_id(), task_queue=task_queue
    )
    async with SimulatedAgents(client, pool, handle.id):
        report = await handle.result()
    assert report.status is GoalStatus.COMPLETED and report.progress.tasks_completed == 12
    history = await handle.fetch_history()
    largest = max(e.ByteSize() for e in history.events)
    assert largest < 16 * 1024  # the spec itself never entered the goal's history

    bad = await store_spec(pool, {"title": "No tasks", "workspace": workspace, "tasks": []})
    for ref, reason in ((bad, "expected at least one task"), (str(uuid.uuid4()), "names no")):
        rejected = await client.start_workflow(
            GoalWorkflow.run, {"spec_ref": ref}, id=new_goal_id(), task_queue=task_queue
        )
        with pytest.raises(WorkflowFailureError) as failure:
            await rejected.result()
        assert reason in str(failure.value.cause)
        row = await pool.fetchrow("SELECT status, error FROM goals WHERE goal_id = $1", rejected.id)
        assert row is not None and row["status"] == "rejected" and reason in row["error"]
