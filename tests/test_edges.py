"""Edges where state used to lie: retries, reused goal ids, lapsed reports, repairs."""

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client, WorkflowUpdateFailedError

from goalkeeper.judging import assignment_problem
from goalkeeper.models import TaskView
from goalkeeper.seals import SealKeys, sealed
from goalkeeper.statuses import GoalStatus, TaskStatus
from store.rows import write_task
from tests.helpers import (
    PATIENCE,
    decide,
    events,
    goal_spec,
    new_goal_id,
    one_row,
    progress,
    report,
    start_goal,
    wait_progress,
    wait_task,
)
from worker import build_worker


def _retry(task_id: str) -> dict[str, str]:
    return {"approver": "ops-lead", "decision": "approve", "task_id": task_id}


async def test_retrying_the_last_failed_task_runs_it_again(
    client: Client, task_queue: str, workspace: str
) -> None:
    spec = goal_spec(
        1, workspace, approvers=["ops-lead"], max_attempts=1, on_task_failure="ask_approver"
    )
    handle = await start_goal(client, spec, task_queue)
    await report(client, await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED), "failed")
    await wait_progress(handle, lambda p: "retry decision" in p.stage)
    after = await handle.execute_update("decide", _retry("t1"))
    assert after["status"] == "running", after  # the goal did not end on the last failure
    retried = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED, attempt=2)
    assert "ops-lead asked for a retry" in retried.history
    await report(client, retried)
    result = await handle.result()
    assert result.status is GoalStatus.COMPLETED and result.tasks[0].attempts == 2


async def test_two_retries_approved_back_to_back_both_run(
    client: Client, task_queue: str, workspace: str
) -> None:
    spec = goal_spec(
        2, workspace, approvers=["ops-lead"], max_attempts=1, on_task_failure="ask_approver"
    )
    handle = await start_goal(client, spec, task_queue)
    for task_id in ("t1", "t2"):
        await report(
            client, await wait_task(client, handle.id, task_id, TaskStatus.ASSIGNED), "failed"
        )
    await wait_progress(handle, lambda p: p.tasks_failed == 2 and "t1, t2" in p.stage)
    goal = client.get_workflow_handle(handle.id)
    await asyncio.gather(
        goal.signal("approval_decision", _retry("t1")),
        goal.signal("approval_decision", _retry("t2")),
    )
    for task_id in ("t1", "t2"):
        await report(
            client, await wait_task(client, handle.id, task_id, TaskStatus.ASSIGNED, attempt=2)
        )
    result = await handle.result()
    assert result.status is GoalStatus.COMPLETED
    assert [t.attempts for t in result.tasks] == [2, 2]


async def test_a_reused_goal_id_is_isolated_from_the_earlier_run(
    client: Client, task_queue: str, workspace: str, pool: asyncpg.Pool
) -> None:
    goal_id = new_goal_id()
    old = await start_goal(client, goal_spec(1, workspace), task_queue, goal_id)
    stale = await wait_task(client, goal_id, "t1", TaskStatus.ASSIGNED)
    await old.terminate("replaced")  # its task workflow carries on: tasks are abandoned
    spec = goal_spec(2, workspace)
    spec["tasks"][0]["id"], spec["tasks"][1]["id"] = "t0", "t1"
    spec["tasks"][1]["depends_on"] = ["t0"]
    new = await start_goal(client, spec, task_queue, goal_id)
    await wait_task(client, goal_id, "t0", TaskStatus.ASSIGNED)

    # The earlier run's task completes its own work; it must not complete this run's t1.
    await report(client, stale, result="from the earlier run")
    # Its task workflow ends after whatever it sends; the goal's (consistent) query below
    # then sees every update it sent.
    await asyncio.wait_for(client.get_workflow_handle(f"{goal_id}/t1").result(), PATIENCE)
    now = await progress(new)
    assert now.tasks_completed == 0 and now.tasks_pending == 1, now
    row = await one_row(
        pool, "SELECT status, result FROM tasks WHERE goal_id = $1 AND task_id = 't1'", goal_id
    )
    assert row["status"] == "pending" and row["result"] is None

    await report(client, await wait_task(client, goal_id, "t0", TaskStatus.ASSIGNED))
    fresh = await wait_task(client, goal_id, "t1", TaskStatus.ASSIGNED)
    assert fresh.assignment_id != stale.assignment_id
    await report(client, fresh, result="from this run")
    result = await new.result()
    assert result.status is GoalStatus.COMPLETED
    assert [t.attempts for t in result.tasks] == [1, 1]
    row = await one_row(
        pool, "SELECT result FROM tasks WHERE goal_id = $1 AND task_id = 't1'", goal_id
    )
    assert row["result"] == "from this run"


async def test_a_report_on_a_lapsed_assignment_is_refused_not_acknowledged(
    client: Client, task_queue: str, workspace: str
) -> None:
    spec = goal_spec(1, workspace, report_deadline_seconds=2, max_attempts=2)
    handle = await start_goal(client, spec, task_queue)
    first = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED)
    second = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED, attempt=2)
    assert any("missed its report deadline (2s)" in line for line in second.history)
    late = {
        "agent_id": first.agent_id,
        "assignment_id": first.assignment_id,
        "outcome": "completed",
        "result": "too late",
    }
    with pytest.raises(WorkflowUpdateFailedError):
        await client.get_workflow_handle(f"{handle.id}/t1").execute_update("report", late)


def test_a_lapsed_assignment_is_refused_even_before_the_task_moves_on() -> None:
    # The moment between deciding a lapse and recording it: the view still names the
    # assignment, yet a report on it must not be taken (it would be dropped).
    view = TaskView(
        goal_id="g",
        task_id="t",
        title="T",
        skill="s",
        status=TaskStatus.ASSIGNED,
        agent_id="a",
        assignment_id="x",
    )
    assert assignment_problem(view, "a", "x", "report") is None
    problem = assignment_problem(view, "a", "x", "report", closed={"x"})
    assert problem is not None and "has lapsed" in problem


async def test_reassign_takes_the_task_only_from_the_assignment_it_names(
    client: Client, task_queue: str, workspace: str, worker_secret: SealKeys
) -> None:
    """Sent as the health check sends it, sealed with the workers' secret."""
    handle = await start_goal(client, goal_spec(1, workspace, max_attempts=3), task_queue)
    first = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED)
    task = client.get_workflow_handle(f"{handle.id}/t1")

    def reassign(request: dict[str, Any]) -> dict[str, Any]:
        return sealed(worker_secret, "reassign", task.id, request)

    await task.signal("reassign", reassign({"assignment_id": str(uuid.uuid4()), "reason": "x"}))
    await task.signal("reassign", reassign({"reason": "no assignment named"}))
    await task.signal(
        "reassign", reassign({"assignment_id": first.assignment_id, "reason": "slow"})
    )
    second = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED, attempt=2)
    assert "slow" in second.history[-1]
    # The earlier requests came first, so they were handled before the one that applied;
    # that none of them reaches the new assignment shows at the end: its report counts,
    # and no third attempt was made.
    await report(client, second)
    result = await handle.result()
    assert result.status is GoalStatus.COMPLETED and result.tasks[0].attempts == 2


async def test_a_forced_row_write_never_overwrites_a_newer_state(
    client: Client, task_queue: str, workspace: str, pool: asyncpg.Pool
) -> None:
    handle = await start_goal(client, goal_spec(1, workspace), task_queue)
    view = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED)
    await report(client, view)
    await handle.result()
    done = await one_row(
        pool, "SELECT seq, status FROM tasks WHERE goal_id = $1 AND task_id = 't1'", handle.id
    )
    assert done["status"] == "completed"
    older = view.model_copy(update={"status": TaskStatus.ASSIGNED})
    assert not await write_task(pool, older, force=True)
    again = await one_row(
        pool, "SELECT seq, status FROM tasks WHERE goal_id = $1 AND task_id = 't1'", handle.id
    )
    assert (again["seq"], again["status"]) == (done["seq"], "completed")
    assert await events(pool, handle.id, "task_completed")


async def test_a_decision_sent_with_the_report_it_follows_is_not_lost(
    client: Client, pool: asyncpg.Pool, workspace: str
) -> None:
    """A worker that restarts applies a report and the approver's decision in one go:
    the decision waits for the report to make the task await approval."""
    queue = f"edge-{uuid.uuid4().hex[:8]}"
    spec = goal_spec(1, workspace, approvers=["ops-lead"])
    spec["tasks"][0]["requires_approval"] = True
    async with build_worker(client, pool, queue):
        handle = await start_goal(client, spec, queue)
        view = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED)
    # No worker runs: both messages wait in history and reach the task in one activation.
    await report(client, view)
    await decide(client, handle.id, "t1", "ops-lead", "approve")
    async with build_worker(client, pool, queue):
        result = await asyncio.wait_for(handle.result(), PATIENCE)
    assert result.status is GoalStatus.COMPLETED
    assert await events(pool, handle.id, "decision_rejected") == []
