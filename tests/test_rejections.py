"""Reports and decisions from the wrong party are rejected, recorded, and change nothing."""

import asyncpg
import pytest
from temporalio.client import Client
from temporalio.service import RPCError

from goalkeeper.statuses import GoalStatus, TaskStatus
from tests.helpers import (
    decide,
    events,
    eventually,
    goal_spec,
    one_of,
    one_row,
    progress,
    report,
    start_goal,
    task_view,
    wait_task,
)


async def _rejections(pool: asyncpg.Pool, goal_id: str, kind: str, count: int) -> list[str]:
    async def probe() -> list[str] | None:
        rows = await events(pool, goal_id, kind)
        return [r["message"] for r in rows] if len(rows) >= count else None

    return await eventually(probe, what=f"{count} {kind} events")


async def test_reports_from_the_wrong_agent_or_assignment_are_rejected(
    client: Client, task_queue: str, workspace: str, pool: asyncpg.Pool
) -> None:
    handle = await start_goal(client, goal_spec(1, workspace), task_queue)
    view = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED)

    await report(client, view, agent_id="impostor")
    await report(client, view, assignment_id="00000000-0000-0000-0000-000000000000")
    await report(client, view, outcome="done")
    await client.get_workflow_handle(f"{handle.id}/t1").signal("agent_report", "not json object")
    # Each rejection is recorded on its own; their order in the trail is not promised.
    messages = await _rejections(pool, handle.id, "report_rejected", 4)

    def one(*parts: str) -> str:
        [found] = [m for m in messages if all(p in m for p in parts)]
        return found

    one("agent 'impostor' does not hold", repr(view.agent_id))
    one("assignment '00000000-0000-0000-0000-000000000000' (agent")
    one("outcome", "'done'")
    one("expected a JSON object")

    unchanged = await task_view(client, handle.id, "t1")
    assert unchanged.status is TaskStatus.ASSIGNED and unchanged.tokens_used == 0
    assert (await progress(handle)).tasks_completed == 0

    await report(client, view)  # the real agent still gets through
    assert (await handle.result()).status is GoalStatus.COMPLETED


async def test_a_stale_assignment_is_rejected_after_reassignment(
    client: Client, task_queue: str, workspace: str, pool: asyncpg.Pool
) -> None:
    handle = await start_goal(client, goal_spec(1, workspace), task_queue)
    first = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED)
    await report(client, first, "failed", error="crashed")
    second = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED, attempt=2)
    assert second.assignment_id != first.assignment_id
    assert second.agent_id != first.agent_id  # a failed agent is not given the task again

    await report(client, first)  # the first agent comes back late with a success
    [message] = await _rejections(pool, handle.id, "report_rejected", 1)
    assert first.assignment_id is not None and first.assignment_id in message
    assert (await task_view(client, handle.id, "t1")).status is TaskStatus.ASSIGNED

    await report(client, second)
    result = await handle.result()
    assert result.tasks[0].attempts == 2 and result.tasks[0].agent_id == second.agent_id


async def test_a_report_after_the_task_ended_is_refused_to_its_sender(
    client: Client, task_queue: str, workspace: str, pool: asyncpg.Pool
) -> None:
    handle = await start_goal(client, goal_spec(1, workspace), task_queue)
    view = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED)
    await report(client, view)
    await handle.result()
    # An ended task closes at once (it holds no place among the goal's running
    # children), so Temporal refuses the late report to the sender itself.
    with pytest.raises(RPCError, match="already completed"):
        await report(client, view, outcome="failed")
    assert (await task_view(client, handle.id, "t1")).status is TaskStatus.COMPLETED


async def test_only_named_approvers_may_decide(
    client: Client, task_queue: str, workspace: str, pool: asyncpg.Pool
) -> None:
    spec = goal_spec(1, workspace, approvers=["ops-lead"])
    spec["tasks"][0].update(requires_approval=True, approvers=["editor"])
    handle = await start_goal(client, spec, task_queue)

    view = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED)
    await decide(client, handle.id, "t1", "ops-lead", "approve")  # nothing to approve yet
    await report(client, view)
    waiting = await wait_task(client, handle.id, "t1", TaskStatus.AWAITING_APPROVAL)
    assert waiting.waiting_on == ["editor", "ops-lead"]
    await decide(client, handle.id, "t1", "mallory", "approve")
    await client.get_workflow_handle(f"{handle.id}/t1").signal(
        "approval_decision", {"approver": "ops-lead", "decision": "maybe"}
    )
    messages = await _rejections(pool, handle.id, "decision_rejected", 3)
    one_of(messages, "not awaiting approval (it is assigned)")
    one_of(messages, "'mallory' may not decide", "['editor', 'ops-lead']")
    one_of(messages, "decision", "'maybe'")
    assert (await task_view(client, handle.id, "t1")).status is TaskStatus.AWAITING_APPROVAL

    await decide(client, handle.id, "t1", "editor", "approve")
    assert (await handle.result()).status is GoalStatus.COMPLETED


async def test_rejected_work_goes_back_for_rework_with_the_comment(
    client: Client, task_queue: str, workspace: str, pool: asyncpg.Pool
) -> None:
    spec = goal_spec(1, workspace, approvers=["ops-lead"], max_attempts=2)
    spec["tasks"][0]["requires_approval"] = True
    handle = await start_goal(client, spec, task_queue)

    first = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED)
    await report(client, first, result="draft 1")
    await wait_task(client, handle.id, "t1", TaskStatus.AWAITING_APPROVAL)
    await decide(client, handle.id, "t1", "ops-lead", "reject", "needs a subject line")
    second = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED, attempt=2)
    assert second.agent_id == first.agent_id  # rework goes back to the agent who did it
    context = await pool.fetchval(
        "SELECT context FROM assignments WHERE assignment_id = $1", second.assignment_id
    )
    assert context["rework"] == [
        {
            "approver": "ops-lead",
            "comment": "needs a subject line",
            "assignment_id": first.assignment_id,
            "previous_result": "draft 1",
        }
    ]

    await report(client, second, result="draft 2")
    await wait_task(client, handle.id, "t1", TaskStatus.AWAITING_APPROVAL, attempt=2)
    await decide(client, handle.id, "t1", "ops-lead", "reject", "still no")
    result = await handle.result()
    assert result.status is GoalStatus.FAILED
    task = result.tasks[0]
    assert (task.outcome, task.reworks) == (TaskStatus.FAILED, 2)
    assert task.error is not None and "still no" in task.error
    agent = await one_row(pool, "SELECT * FROM agents WHERE agent_id = $1", first.agent_id)
    # Its slot is free, and having been provisioned for this goal, it retired with it.
    assert agent["active_assignments"] == 0 and agent["status"] == "retired"
