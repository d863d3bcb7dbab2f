"""Sub-goals: a task that is a goal runs as a child goal, counted by its parent as one task."""

from typing import Any

import asyncpg
import pytest
from temporalio.client import Client, WorkflowFailureError

from goalkeeper.models import TaskPage, TaskSummary
from goalkeeper.statuses import GoalStatus, TaskStatus
from store.results import resolve
from tests.helpers import (
    eventually,
    goal_spec,
    one_row,
    progress,
    report,
    start_goal,
    wait_task,
)


def _research(n: int = 3, **fields: Any) -> dict[str, Any]:
    """A task whose work is a goal of `n` writing tasks."""
    tasks = [{"id": f"r{i}", "title": f"Source {i}", "skill": "writing"} for i in range(1, n + 1)]
    return {
        "id": "research",
        "title": "Research",
        "goal": {"title": "Research the market", "tasks": tasks},
        **fields,
    }


async def _task(client: Client, goal_id: str, task_id: str) -> TaskSummary:
    page = await client.get_workflow_handle(goal_id).query("tasks", result_type=TaskPage)
    return next(t for t in page.tasks if t.task_id == task_id)


async def test_a_subgoal_is_one_task_whose_progress_and_cost_roll_up(
    client: Client, task_queue: str, workspace: str, pool: asyncpg.Pool
) -> None:
    spec = goal_spec(
        0,
        workspace,
        tasks=[
            _research(),
            {"id": "summary", "title": "Summary", "skill": "writing", "depends_on": ["research"]},
        ],
    )
    handle = await start_goal(client, spec, task_queue)
    sub = f"{handle.id}/research"
    views = [await wait_task(client, sub, f"r{i}", TaskStatus.ASSIGNED) for i in (1, 2, 3)]
    await report(client, views[0])

    async def shown() -> TaskSummary | None:
        research = await _task(client, handle.id, "research")
        return research if research.goal_progress == "1 of 3 tasks done" else None

    research = await eventually(shown, what="the sub-goal's progress beside its task")
    assert (research.status, research.tokens_used, research.cost_usd) == (
        TaskStatus.ASSIGNED,
        100,
        0.01,
    )
    now = await progress(handle)
    assert (now.tasks_total, now.tasks_running, now.tasks_completed) == (2, 1, 0)

    for view in views[1:]:
        await report(client, view)
    summary = await wait_task(client, handle.id, "summary", TaskStatus.ASSIGNED)
    context = await pool.fetchval(
        "SELECT context FROM assignments WHERE assignment_id = $1::uuid", summary.assignment_id
    )
    reference = context["dependency_results"]["research"]
    assert reference == {"$ref": f"deliverables/{sub}"}
    deliverable = await resolve(pool, reference)
    assert "Research the market" in deliverable and "result of r3" in deliverable
    await report(client, summary)

    result = await handle.result()
    assert result.status is GoalStatus.COMPLETED
    assert (result.progress.tasks_total, result.progress.tasks_completed) == (2, 2)
    assert (result.progress.tokens_used, round(result.progress.cost_usd, 6)) == (400, 0.04)
    line = next(t for t in result.tasks if t.task_id == "research")
    assert (line.outcome, line.agent_id, line.tokens_used) == (TaskStatus.COMPLETED, None, 300)
    row = await one_row(
        pool,
        "SELECT status::text, subgoal_id, agent_id, tokens_used FROM tasks "
        "WHERE goal_id = $1 AND task_id = 'research'",
        handle.id,
    )
    assert dict(row) == {
        "status": "completed",
        "subgoal_id": sub,
        "agent_id": None,
        "tokens_used": 300,
    }
    kinds = [
        r["kind"]
        for r in await pool.fetch(
            "SELECT kind FROM events WHERE goal_id = $1 AND task_id = 'research' ORDER BY seq",
            handle.id,
        )
    ]
    assert kinds == ["subgoal_started", "task_completed"]
    child = await pool.fetchval("SELECT status::text FROM goals WHERE goal_id = $1", sub)
    assert child == "completed"


@pytest.mark.parametrize("policy", ["continue", "fail_goal"])
async def test_a_failed_subgoal_fails_its_task_under_the_parents_policy(
    client: Client, task_queue: str, workspace: str, policy: str
) -> None:
    spec = goal_spec(
        0,
        workspace,
        max_attempts=1,
        on_task_failure=policy,
        tasks=[
            {"id": "other", "title": "Other", "skill": "writing"},
            _research(1),
            {"id": "after", "title": "After", "skill": "writing", "depends_on": ["research"]},
        ],
    )
    handle = await start_goal(client, spec, task_queue)
    sub = f"{handle.id}/research"
    other = await wait_task(client, handle.id, "other", TaskStatus.ASSIGNED)
    source = await wait_task(client, sub, "r1", TaskStatus.ASSIGNED)
    await report(client, source, "failed", error="no data")
    if policy == "continue":
        await report(client, other)
        assert (await handle.result()).status is GoalStatus.FAILED
    else:  # the sub-goal fails as its parent would; the parent fails, and stops the rest
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        assert "research" in str(failure.value.cause)
    final = await progress(handle)
    assert final.status is GoalStatus.FAILED
    outcomes = {
        t.task_id: t.status
        for t in (
            await client.get_workflow_handle(handle.id).query("tasks", result_type=TaskPage)
        ).tasks
    }
    assert outcomes["research"] is TaskStatus.FAILED and outcomes["after"] is TaskStatus.SKIPPED
    assert outcomes["other"] is (
        TaskStatus.COMPLETED if policy == "continue" else TaskStatus.SKIPPED
    )
    research = await _task(client, handle.id, "research")
    assert research.error is not None and sub in research.error


async def test_a_goal_that_fails_stops_its_running_subgoal(
    client: Client, task_queue: str, workspace: str, pool: asyncpg.Pool
) -> None:
    spec = goal_spec(
        0,
        workspace,
        max_attempts=1,
        on_task_failure="fail_goal",
        tasks=[{"id": "doomed", "title": "Doomed", "skill": "writing"}, _research(1)],
    )
    handle = await start_goal(client, spec, task_queue)
    sub = f"{handle.id}/research"
    source = await wait_task(client, sub, "r1", TaskStatus.ASSIGNED)
    doomed = await wait_task(client, handle.id, "doomed", TaskStatus.ASSIGNED)
    await report(client, doomed, "failed", error="broken")
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    with pytest.raises(WorkflowFailureError) as stopped:
        await client.get_workflow_handle(sub).result()
    assert "aborted: goal failed" in str(stopped.value.cause)
    assert (await wait_task(client, sub, "r1", TaskStatus.SKIPPED)).agent_id == source.agent_id
    rows = await pool.fetch(
        "SELECT goal_id, status::text FROM goals WHERE goal_id IN ($1, $2)", handle.id, sub
    )
    statuses = {r["goal_id"]: r["status"] for r in rows}
    assert statuses == {handle.id: "failed", sub: "failed"}


async def test_an_approver_retries_a_failed_subgoal_and_its_new_run_completes(
    client: Client, task_queue: str, workspace: str
) -> None:
    spec = goal_spec(
        0,
        workspace,
        max_attempts=1,
        approvers=["lead"],
        on_task_failure="ask_approver",
        tasks=[_research(1)],
    )
    handle = await start_goal(client, spec, task_queue)
    sub = client.get_workflow_handle(f"{handle.id}/research")
    source = await wait_task(client, sub.id, "r1", TaskStatus.ASSIGNED)
    await report(client, source, "failed", error="no data")
    # The sub-goal inherited the policy: the lead gives up its task, so the sub-goal fails.
    await eventually(
        lambda: _stage_contains(sub, "awaiting a retry decision on r1"),
        what="the sub-goal to ask about r1",
    )
    await sub.signal(
        "approval_decision", {"approver": "lead", "decision": "reject", "task_id": "r1"}
    )
    await eventually(
        lambda: _stage_contains(handle, "awaiting a retry decision on research"),
        what="the parent to ask about research",
    )
    await handle.signal(
        "approval_decision", {"approver": "lead", "decision": "approve", "task_id": "research"}
    )
    again = await wait_task(client, sub.id, "r1", TaskStatus.ASSIGNED)
    assert again.assignment_id != source.assignment_id
    await report(client, again)
    result = await handle.result()
    assert result.status is GoalStatus.COMPLETED
    line = result.tasks[0]
    assert (line.task_id, line.outcome, line.attempts) == ("research", TaskStatus.COMPLETED, 2)


async def _stage_contains(handle: Any, text: str) -> bool:
    return text in (await progress(handle)).stage


def test_subgoals_nest_to_a_limit_with_a_clear_error() -> None:
    from goalkeeper.errors import InvalidGoalSpec
    from goalkeeper.validation import validate_goal_spec

    goal: dict[str, Any] = {"title": "Leaf", "tasks": [{"id": "x", "title": "X", "skill": "s"}]}
    for level in range(3):
        goal = {
            "title": f"Level {level}",
            "tasks": [{"id": f"t{level}", "title": "T", "goal": goal}],
        }
    validate_goal_spec(goal, "top")
    deeper = {"title": "Too deep", "tasks": [{"id": "t3", "title": "T", "goal": goal}]}
    with pytest.raises(InvalidGoalSpec, match=r"sub-goals nest at most 3 deep"):
        validate_goal_spec(deeper, "top")
    with pytest.raises(
        InvalidGoalSpec, match=r"tasks\[0\]\.goal\.tasks\[0\]\.skill: Field required"
    ):
        validate_goal_spec(
            {
                "title": "T",
                "tasks": [
                    {
                        "id": "r",
                        "title": "R",
                        "goal": {"title": "G", "tasks": [{"id": "x", "title": "X"}]},
                    }
                ],
            },
            "top",
        )


def test_a_plan_or_an_addition_that_holds_a_goal_is_checked_like_a_spec() -> None:
    from goalkeeper.errors import InvalidGoalSpec
    from goalkeeper.models import GoalSpec
    from goalkeeper.planning import check_new_tasks

    header = GoalSpec(title="Launch", goal_id="launch")
    added = check_new_tasks(
        header,
        [
            {
                "id": "s",
                "title": "S",
                "goal": {"title": "G", "tasks": [{"id": "a", "title": "A", "skill": "writing"}]},
            }
        ],
        set(),
        500,
    )
    assert (added[0].skill, added[0].goal is not None) == ("goal", True)
    with pytest.raises(InvalidGoalSpec, match=r"tasks\[0\]\.goal\.tasks\[0\]\.skill"):
        check_new_tasks(
            header,
            [
                {
                    "id": "s",
                    "title": "S",
                    "goal": {"title": "G", "tasks": [{"id": "a", "title": "A"}]},
                }
            ],
            set(),
            500,
        )
