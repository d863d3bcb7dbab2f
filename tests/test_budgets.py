"""Budgets that hold: a goal pauses at its budget with work in flight, loses nothing, and
goes on when one of its approvers raises it, or ends when one stops it."""

from typing import Any

import asyncpg
import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client, WorkflowFailureError, WorkflowUpdateFailedError

from goalkeeper import budgets
from goalkeeper.errors import InvalidGoalSpec
from goalkeeper.models import BudgetState, GoalSpec, Progress
from goalkeeper.statuses import GoalStatus, TaskStatus
from goalkeeper.validation import validate_goal_spec
from interfaces.stack import TemporalDevServer
from tests.helpers import (
    events,
    eventually,
    goal_spec,
    new_goal_id,
    one_row,
    progress,
    report,
    start_goal,
    task_view,
    wait_progress,
    wait_task,
)
from tests.starter import Ran, starter


def paused(p: Progress) -> bool:
    return p.stage.startswith("paused: budget")


async def raise_budget(client: Client, goal_id: str, **payload: Any) -> Progress:
    return await client.get_workflow_handle(goal_id).execute_update(
        "raise_budget", payload, result_type=Progress
    )


async def assignments_of(pool: asyncpg.Pool, goal_id: str, task_id: str) -> int:
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM assignments WHERE goal_id = $1 AND task_id = $2",
            goal_id,
            task_id,
        )
    )


# The core's decisions.


def test_standing_alerts_at_80_percent_and_pauses_at_100() -> None:
    budget = BudgetState(usd=1.0, tokens=1000)
    assert budgets.standing(budget, 0.79, 10) == "within"
    assert budgets.standing(budget, 0.8, 10) == "alert"
    assert budgets.standing(budget, 0.1, 800) == "alert"
    assert budgets.standing(budget, 0.1, 1000) == "spent"
    assert budgets.standing(BudgetState(), 1e9, 10**12) == "within"


def test_only_named_approvers_raise_and_only_upwards() -> None:
    spec = GoalSpec.model_validate(
        {"title": "g", "approvers": ["boss"], "escalation": [["vp"]], "budget_usd": 1.0}
    )
    state = budgets.initial(spec)
    running = GoalStatus.RUNNING

    def problem(approver: str, **amounts: Any) -> str | None:
        request = budgets.BudgetRaise(approver=approver, **amounts)
        return budgets.raise_problem("g", spec, running, state, request, 1.2, 0)

    assert "'mallory' may not raise the budget" in (problem("mallory", usd=5.0) or "")
    assert "names no amount" in (problem("boss") or "")
    assert "not above the spend so far (1.2)" in (problem("boss", usd=1.1) or "")
    assert problem("boss", usd=2.0) is None
    assert problem("vp", usd=2.0) is None  # an escalation level may decide too
    both = budgets.initial(spec).model_copy(update={"tokens": 100})
    request = budgets.BudgetRaise(approver="boss", usd=5.0)
    still = budgets.raise_problem("g", spec, running, both, request, 0.5, 150)
    assert "its tokens budget is spent too" in (still or "")  # the raise would not unpause
    unbudgeted = budgets.raise_problem("g", spec, running, BudgetState(), request, 0, 0)
    assert "has no budget to raise" in (unbudgeted or "")
    ended = budgets.raise_problem(
        "g", spec, GoalStatus.FAILED, state, budgets.BudgetRaise(approver="boss", usd=2), 0, 0
    )
    assert "has ended" in (ended or "")


def test_a_budget_needs_approvers_to_decide_on_it() -> None:
    with pytest.raises(InvalidGoalSpec, match="a goal with a budget needs approvers"):
        validate_goal_spec(
            {"title": "g", "budget_usd": 1.0, "tasks": [{"title": "t", "skill": "s"}]}, "g"
        )


def test_ten_attempts_of_a_tenth_spend_a_whole_budget() -> None:
    cost = sum([0.1] * 10)  # 0.9999999999999999 in floating point; PostgreSQL says 1.000000
    assert budgets.standing(BudgetState(usd=1.0), cost, 0) == "spent"


# On the real stack.


async def test_a_spent_budget_pauses_with_work_in_flight_and_a_raise_resumes(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    goal_id = new_goal_id()
    spec = goal_spec(4, workspace, approvers=["boss"], budget_usd=1.0, max_running_tasks=2)
    handle = await start_goal(client, spec, task_queue, goal_id)
    t1 = await wait_task(client, goal_id, "t1", TaskStatus.ASSIGNED)
    t2 = await wait_task(client, goal_id, "t2", TaskStatus.ASSIGNED)
    context = await pool.fetchval(
        "SELECT context FROM assignments WHERE assignment_id = $1::uuid", t1.assignment_id
    )
    assert context["budget"] == {"usd_left": 1.0, "tokens_left": None}

    await report(client, t1, cost_usd=0.85)  # 85%: an alert, nothing paused
    await eventually(lambda: events(pool, goal_id, "budget_alert"), what="the 80% alert")
    t3 = await wait_task(client, goal_id, "t3", TaskStatus.ASSIGNED)

    await report(client, t2, cost_usd=0.3)  # $1.15 of $1.00: paused, t3 still running
    now = await wait_progress(handle, paused)
    assert "$1.15 of $1.00" in now.stage and "approver boss" in now.stage
    assert now.budget_usd == 1.0 and now.cost_usd == pytest.approx(1.15)
    assert (await events(pool, goal_id, "goal_paused"))[0]["message"].count("boss") == 1
    shown = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    assert "paused: budget" in shown.current_details  # the Temporal UI's details
    assert "budget: $1.15 of $1.00 (115%)" in shown.current_details
    alert = await pool.fetchrow(
        "SELECT * FROM alerts WHERE kind = 'budget_spent' AND subject = $1", goal_id
    )
    assert alert is not None and alert["resolved_at"] is None

    await report(client, t3, cost_usd=0.1)  # work in flight finishes and is kept
    now = await wait_progress(handle, lambda p: p.tasks_completed == 3)
    assert paused(now) and now.tasks_pending == 1
    assert await assignments_of(pool, goal_id, "t4") == 0  # no new assignment started

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await raise_budget(client, goal_id, approver="mallory", usd=5.0)
    assert "'mallory' may not raise the budget" in str(refused.value.cause)
    with pytest.raises(WorkflowUpdateFailedError) as too_low:
        await raise_budget(client, goal_id, approver="boss", usd=1.1)
    assert "not above the spend so far" in str(too_low.value.cause)

    after = await raise_budget(client, goal_id, approver="boss", usd=2.0, comment="worth it")
    assert after.budget_usd == 2.0 and not paused(after)
    t4 = await wait_task(client, goal_id, "t4", TaskStatus.ASSIGNED)
    context = await pool.fetchval(
        "SELECT context FROM assignments WHERE assignment_id = $1::uuid", t4.assignment_id
    )
    assert context["budget"]["usd_left"] == pytest.approx(0.75)
    await report(client, t4, cost_usd=0.2)
    result = await handle.result()
    assert result.status is GoalStatus.COMPLETED
    assert result.progress.cost_usd == pytest.approx(1.45)
    raised = await events(pool, goal_id, "budget_raised")
    assert len(raised) == 1 and "'boss' raised" in raised[0]["message"]
    assert "worth it" in raised[0]["message"]
    row = await one_row(pool, "SELECT * FROM goals WHERE goal_id = $1", goal_id)
    assert float(row["budget_usd"]) == 2.0 and float(row["spent_usd"]) == pytest.approx(1.45)
    still_open = await pool.fetchval(
        "SELECT count(*) FROM alerts WHERE subject = $1 AND resolved_at IS NULL", goal_id
    )
    assert still_open == 0


async def test_a_stop_ends_the_paused_goal_visibly(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    goal_id = new_goal_id()
    spec = goal_spec(2, workspace, approvers=["boss"], budget_tokens=500, max_running_tasks=1)
    handle = await start_goal(client, spec, task_queue, goal_id)
    t1 = await wait_task(client, goal_id, "t1", TaskStatus.ASSIGNED)
    await report(client, t1, tokens_used=600)
    await wait_progress(handle, paused)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await client.get_workflow_handle(goal_id).execute_update(
            "stop", {"approver": "intern"}, result_type=Progress
        )
    assert "'intern' may not stop" in str(refused.value.cause)
    await client.get_workflow_handle(goal_id).execute_update(
        "stop", {"approver": "boss", "comment": "not worth more"}, result_type=Progress
    )
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    assert "stopped by 'boss': not worth more" in str(failed.value.cause)
    final = await progress(handle)
    assert final.status is GoalStatus.FAILED and final.tasks_completed == 1
    assert final.tasks_skipped == 1  # t2 never started
    assert await assignments_of(pool, goal_id, "t2") == 0
    stopped = await events(pool, goal_id, "goal_stopped")
    assert len(stopped) == 1 and stopped[0]["detail"]["by"] == "boss"


async def test_a_retry_waits_for_the_budget_like_a_new_task(
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    workspace: str,
    database_url: str,
    temporal_server: TemporalDevServer,
) -> None:
    goal_id = new_goal_id()
    spec = goal_spec(1, workspace, approvers=["boss"], budget_usd=0.5)
    handle = await start_goal(client, spec, task_queue, goal_id)
    t1 = await wait_task(client, goal_id, "t1", TaskStatus.ASSIGNED)
    await report(client, t1, "failed", error="out of luck", cost_usd=0.6)
    now = await wait_progress(handle, paused)  # the task told the goal what it cost
    assert now.cost_usd == pytest.approx(0.6)
    assert (await task_view(client, goal_id, "t1")).status is TaskStatus.PENDING
    assert await assignments_of(pool, goal_id, "t1") == 1
    await raise_budget(client, goal_id, approver="boss", usd=1.0)
    again = await wait_task(client, goal_id, "t1", TaskStatus.ASSIGNED, attempt=2)
    await report(client, again, cost_usd=0.1)
    result = await handle.result()
    assert result.status is GoalStatus.COMPLETED
    assert result.progress.cost_usd == pytest.approx(0.7)
    shown = await starter(
        database_url, "goal", "report", goal_id, temporal_address=temporal_server.address
    )
    assert "budget $0.70 of $1.00 (70%)" in shown.out
    assert "of which $0.6000 and 100 tokens (86%) went on 1 failed" in shown.out


async def test_a_pause_nobody_decides_escalates_then_stops(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    goal_id = new_goal_id()
    spec = goal_spec(
        2,
        workspace,
        approvers=["boss"],
        escalation=[["vp"]],
        approval_timeout_seconds=2,
        budget_usd=0.1,
        max_running_tasks=1,
    )
    handle = await start_goal(client, spec, task_queue, goal_id)
    t1 = await wait_task(client, goal_id, "t1", TaskStatus.ASSIGNED)
    await report(client, t1, cost_usd=0.2)
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    assert "no decision at any of 2 approval levels" in str(failed.value.cause)
    escalated = await events(pool, goal_id, "budget_escalated")
    assert len(escalated) == 1 and "['vp']" in escalated[0]["message"]


async def test_a_workspace_budget_holds_across_goals(
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    workspace: str,
    database_url: str,
    temporal_server: TemporalDevServer,
) -> None:
    bad = await starter(database_url, "budget", "set", "--workspace", workspace, "--usd", "-1")
    assert bad.code == 2 and "--usd must be above 0, got -1.0" in bad.err
    ran = await starter(database_url, "budget", "set", "--workspace", workspace, "--usd", "1")
    assert ran.code == 0, ran.err
    first = new_goal_id()
    handle = await start_goal(client, goal_spec(1, workspace), task_queue, first)
    t1 = await wait_task(client, first, "t1", TaskStatus.ASSIGNED)
    await report(client, t1, cost_usd=1.2)
    await handle.result()
    alert = await pool.fetchrow(
        "SELECT * FROM alerts WHERE kind = 'workspace_budget' AND subject LIKE $1 || ' %'",
        workspace,
    )
    assert alert is not None and "$1.2" in alert["message"]

    second = new_goal_id()
    other = await start_goal(client, goal_spec(1, workspace), task_queue, second)
    now = await wait_progress(other, paused)
    assert f"workspace '{workspace}' has spent its monthly budget" in now.stage
    assert await assignments_of(pool, second, "t1") == 0
    # Approvers of a goal cannot raise a workspace's budget; an operator can.
    ran = await starter(database_url, "budget", "set", "--workspace", workspace, "--usd", "5")
    assert ran.code == 0 and "spent this month $1.2000" in ran.out
    view = await wait_task(client, second, "t1", TaskStatus.ASSIGNED)
    await report(client, view, cost_usd=0.1)
    assert (await other.result()).status is GoalStatus.COMPLETED
    shown = await starter(database_url, "budget", "show", "--workspace", workspace, "--json")
    assert shown.json()[0]["spent_usd"] == pytest.approx(1.3)
    assert shown.json()[0]["monthly_usd"] == 5.0


async def test_the_cli_raises_and_stops_as_a_named_approver(
    client: Client,
    task_queue: str,
    workspace: str,
    database_url: str,
    temporal_server: TemporalDevServer,
) -> None:
    goal_id = new_goal_id()
    spec = goal_spec(2, workspace, approvers=["boss"], budget_usd=0.5, max_running_tasks=1)
    handle = await start_goal(client, spec, task_queue, goal_id)
    t1 = await wait_task(client, goal_id, "t1", TaskStatus.ASSIGNED)
    await report(client, t1, cost_usd=0.6)
    await wait_progress(handle, paused)
    shown = await starter(
        database_url, "goal", "progress", goal_id, temporal_address=temporal_server.address
    )
    assert "budget $0.60 of $0.50 (120%)" in shown.out and "paused: budget" in shown.out

    async def budget(*args: str) -> Ran:
        return await starter(
            database_url, "budget", *args, temporal_address=temporal_server.address
        )

    wrong = await budget("raise", goal_id, "--usd", "2", "--as", "mallory")
    assert wrong.code == 1 and "'mallory' may not raise the budget" in wrong.err
    missing = await budget("raise", "no-such-goal", "--usd", "2", "--as", "boss")
    assert missing.code == 2 and "no goal 'no-such-goal'" in missing.err
    ran = await budget("raise", goal_id, "--usd", "2", "--as", "boss", "--json")
    assert ran.code == 0, ran.err
    assert ran.json()["budget_usd"] == 2.0
    t2 = await wait_task(client, goal_id, "t2", TaskStatus.ASSIGNED)
    stopped = await budget("stop", goal_id, "--as", "boss", "--comment", "enough")
    assert stopped.code == 0 and "stopped by 'boss': enough" in stopped.out
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    assert (await task_view(client, goal_id, "t2")).status is TaskStatus.SKIPPED
    assert t2.attempts == 1


async def test_a_goal_in_partitions_pauses_and_resumes_as_a_whole(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    goal_id = new_goal_id()
    spec = goal_spec(
        6, workspace, approvers=["boss"], budget_usd=0.5, partition_size=2, max_running_tasks=1
    )
    handle = await start_goal(client, spec, task_queue, goal_id)

    async def assigned() -> list[asyncpg.Record]:
        return await pool.fetch(
            "SELECT task_id FROM assignments WHERE goal_id = $1 AND status = 'active'", goal_id
        )

    first = (await eventually(assigned, what="a first assignment"))[0]["task_id"]
    view = await wait_task(client, goal_id, first, TaskStatus.ASSIGNED)
    await report(client, view, cost_usd=0.6)
    await wait_progress(handle, paused)
    # Whatever other partitions had started finishes; nothing new is assigned.
    for row in await assigned():
        await report(client, await task_view(client, goal_id, row["task_id"]), cost_usd=0.01)
    held = await wait_progress(handle, lambda p: p.tasks_running == 0)
    assert paused(held) and held.tasks_completed < 6
    await raise_budget(client, goal_id, approver="boss", usd=10.0)

    async def finish() -> bool:
        for row in await assigned():
            await report(client, await task_view(client, goal_id, row["task_id"]), cost_usd=0.01)
        return (await progress(handle)).tasks_completed == 6

    await eventually(finish, what="every task to complete after the raise")
    assert (await handle.result()).status is GoalStatus.COMPLETED
