"""Attempt budgets, approval escalation, and what a goal does when a task fails for good."""

import asyncpg
import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from goalkeeper.models import TaskView
from goalkeeper.statuses import GoalStatus, TaskStatus
from store.paging import goal_tasks
from tests.helpers import (
    decide,
    events,
    eventually,
    goal_spec,
    progress,
    report,
    start_goal,
    task_view,
    wait_progress,
    wait_task,
)


async def test_failures_lapses_and_rejections_share_one_budget_named_attempt_by_attempt(
    client: Client, task_queue: str, workspace: str
) -> None:
    # Only an agent that has heartbeated can go silent: attempts 1 and 3 never heartbeat,
    # so however long the test takes to report them, only attempt 2 can lapse.
    spec = goal_spec(
        1, workspace, approvers=["ops-lead"], max_attempts=3, heartbeat_timeout_seconds=2
    )
    spec["tasks"][0]["requires_approval"] = True
    handle = await start_goal(client, spec, task_queue)
    first = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED)
    await report(client, first, "failed", error="model overloaded")
    second = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED, attempt=2)
    # Attempt 2 heartbeats once, then says nothing: its silence lapses it.
    await client.get_workflow_handle(f"{handle.id}/t1").signal(
        "agent_heartbeat", {"agent_id": second.agent_id, "assignment_id": second.assignment_id}
    )
    third = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED, attempt=3)
    await report(client, third)
    await wait_task(client, handle.id, "t1", TaskStatus.AWAITING_APPROVAL)
    await decide(client, handle.id, "t1", "ops-lead", "reject", "wrong tone")
    result = await handle.result()
    task = result.tasks[0]
    assert (task.outcome, task.attempts) == (TaskStatus.FAILED, 3)
    assert task.error is not None
    lines = task.error.split("; ")
    assert "attempt 1:" in lines[0] and "model overloaded" in lines[0]
    assert "attempt 2:" in lines[1] and "went silent (no heartbeat for 2s)" in lines[1]
    assert "attempt 3:" in lines[2] and "completed" in lines[2]
    assert "ops-lead rejected: wrong tone" in lines[3]


async def test_an_unanswered_approval_escalates_and_the_chain_end_applies_the_default(
    client: Client, task_queue: str, workspace: str, pool: asyncpg.Pool
) -> None:
    spec = goal_spec(
        2,
        workspace,
        approvers=["ops-lead"],
        escalation=[["director"]],
        # The director must decide t1 within this of its escalation: a time no busy
        # machine's round trip (a query, then a signal) comes near, unlike 2 s.
        approval_timeout_seconds=6,
        on_approval_timeout="fail",
    )
    for task in spec["tasks"]:
        task["requires_approval"] = True
    handle = await start_goal(client, spec, task_queue)
    for task_id in ("t1", "t2"):
        await report(client, await wait_task(client, handle.id, task_id, TaskStatus.ASSIGNED))

    # t1: ops-lead stays silent; the director is asked, and decides.
    escalated = await eventually(
        lambda: _at_level(client, handle.id, "t1", 1), what="escalation of t1"
    )
    assert escalated.waiting_on == ["director"]
    await decide(client, handle.id, "t1", "ops-lead", "approve")  # too late: not this level
    await decide(client, handle.id, "t1", "director", "approve")
    # t2: nobody decides at any level; the goal's default fails it.
    result = await handle.result()
    outcomes = {t.task_id: (t.outcome, t.error) for t in result.tasks}
    assert outcomes["t1"] == (TaskStatus.COMPLETED, None)
    assert outcomes["t2"][0] is TaskStatus.FAILED
    assert "no decision at any of 2 approval levels" in (outcomes["t2"][1] or "")
    escalations = await events(pool, handle.id, "approval_escalated")
    assert {e["task_id"] for e in escalations} == {"t1", "t2"}
    rejected = await events(pool, handle.id, "decision_rejected")
    assert any("'ops-lead' may not decide" in e["message"] for e in rejected)


async def _at_level(client: Client, goal_id: str, task_id: str, level: int) -> TaskView | None:
    view = await task_view(client, goal_id, task_id)
    return view if view.approval_level == level else None


async def test_the_default_at_the_chain_end_can_be_rework(
    client: Client, task_queue: str, workspace: str
) -> None:
    spec = goal_spec(
        1,
        workspace,
        approvers=["ops-lead"],
        approval_timeout_seconds=1,
        on_approval_timeout="reject",
    )
    spec["tasks"][0]["requires_approval"] = True
    handle = await start_goal(client, spec, task_queue)
    await report(client, await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED))
    second = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED, attempt=2)
    assert second.reworks == 1 and "goalkeeper rejected" in second.history[-1]


async def test_fail_goal_stops_every_task_and_fails_the_workflow_with_its_report(
    client: Client, task_queue: str, workspace: str, pool: asyncpg.Pool
) -> None:
    spec = goal_spec(3, workspace, max_attempts=1, on_task_failure="fail_goal", max_running_tasks=2)
    handle = await start_goal(client, spec, task_queue)
    first = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED)
    second = await wait_task(client, handle.id, "t2", TaskStatus.ASSIGNED)
    await report(client, first, "failed", error="bad input data")
    with pytest.raises(WorkflowFailureError) as caught:
        await handle.result()
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "GoalFailed"
    assert "on_task_failure=fail_goal" in cause.message and "task 't1' failed" in cause.message
    views = await goal_tasks(client, handle.id)
    assert {v.task_id: v.status for v in views} == {
        "t1": TaskStatus.FAILED,
        "t2": TaskStatus.SKIPPED,
        "t3": TaskStatus.SKIPPED,
    }
    agent = await pool.fetchrow(
        "SELECT active_assignments FROM agents WHERE agent_id = $1", second.agent_id
    )
    assert agent is not None and agent["active_assignments"] == 0  # the aborted task let go
    final = await progress(handle)
    assert final.status is GoalStatus.FAILED and final.on_task_failure == "fail_goal"


async def test_ask_approver_retries_a_failed_task_when_told_to(
    client: Client, task_queue: str, workspace: str, pool: asyncpg.Pool
) -> None:
    spec = goal_spec(
        2, workspace, approvers=["ops-lead"], max_attempts=1, on_task_failure="ask_approver"
    )
    spec["tasks"][1]["depends_on"] = ["t1"]
    handle = await start_goal(client, spec, task_queue)
    first = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED)
    await report(client, first, "failed", error="flaky network")
    waiting = await wait_progress(handle, lambda p: "retry decision" in p.stage)
    assert waiting.status is GoalStatus.RUNNING and waiting.tasks_pending == 1
    goal = client.get_workflow_handle(handle.id)
    await goal.signal(
        "approval_decision", {"approver": "mallory", "decision": "approve", "task_id": "t1"}
    )
    await goal.signal(
        "approval_decision", {"approver": "ops-lead", "decision": "approve", "task_id": "nope"}
    )
    progress_after = await goal.execute_update(
        "decide", {"approver": "ops-lead", "decision": "approve", "task_id": "t1"}
    )
    assert progress_after["stage"] == "running"
    retried = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED, attempt=2)
    await report(client, retried)
    await report(client, await wait_task(client, handle.id, "t2", TaskStatus.ASSIGNED))
    result = await handle.result()
    assert result.status is GoalStatus.COMPLETED
    rejected = [e["message"] for e in await events(pool, handle.id, "decision_rejected")]
    assert any("'mallory' may not decide" in m for m in rejected)
    assert any("has no task 'nope'" in m for m in rejected)
    assert "ops-lead asked for a retry" in " ".join(
        (await task_view(client, handle.id, "t1")).history
    )
