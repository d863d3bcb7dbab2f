"""A running goal's task reassigned or cancelled by one of its approvers: over Temporal's
wire as an outsider sends it, through the HTTP API as a token's person, and by the CLI.

Each refusal names its reason and leaves the task as it was; a reassigned task completes
by its new agent while the old one's late report is refused as stale; a cancelled task
ends skipped, with what depends on it, and the goal goes on to its end.
"""

from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.service import RPCError

from goalkeeper import signing
from goalkeeper.attempts import Standing, reassigned
from goalkeeper.controls import CONTROLS
from goalkeeper.models import GoalReport, Progress, TaskPage, TaskSummary
from goalkeeper.scheduling import Plan, Schedule
from goalkeeper.statuses import AgentStatus, AssignmentStatus, GoalStatus, TaskStatus
from goalkeeper.task_controls import (
    AgentStanding,
    TaskCancel,
    TaskReassign,
    agent_problem,
    cancel_problem,
    reassign_problem,
)
from interfaces.stack import TemporalDevServer
from store.keys import register_approver_key
from tests.helpers import (
    PATIENCE,
    eventually,
    goal_spec,
    report,
    start_goal,
    task_view,
    wait_task,
)
from tests.starter import starter
from tests.test_api_actions import bearer, refused
from tests.test_replay import REPLAYER
from tests.test_signatures import signed_report

KEYS = {name: signing.new_keys() for name in ("agent", "lead", "mallory")}


# The rules, without a server.


def test_a_reassign_is_judged_on_the_task_the_goal_holds() -> None:
    held = TaskSummary(task_id="t", status=TaskStatus.ASSIGNED, agent_id="a", assignment_id="x")
    ask = TaskReassign(task_id="t", approver="lead")
    assert reassign_problem("g", ask, TaskStatus.ASSIGNED, held, True, False) is None
    cases = {
        "no such task": (None, held, True, False),
        "already ended (completed)": (TaskStatus.COMPLETED, held, False, False),
        "a goal of its own": (TaskStatus.ASSIGNED, held, True, True),
        "awaits approval": (TaskStatus.AWAITING_APPROVAL, held, True, False),
        "no agent holds it yet": (TaskStatus.PENDING, TaskSummary(task_id="t"), False, False),
    }
    for words, args in cases.items():
        problem = reassign_problem("g", ask, *args)
        assert problem is not None and words in problem, (words, problem)
    stale = ask.model_copy(update={"assignment_id": "old"})
    problem = reassign_problem("g", stale, TaskStatus.ASSIGNED, held, True, False)
    assert "counts for nothing" in str(problem)
    worn = held.model_copy(update={"attempts": 100})
    problem = reassign_problem("g", ask, TaskStatus.ASSIGNED, worn, True, False)
    assert "it has had 100 attempts" in str(problem)
    same = ask.model_copy(update={"agent": "a"})
    problem = reassign_problem("g", same, TaskStatus.ASSIGNED, held, True, False)
    assert "already holds it" in str(problem)


def test_the_agent_a_reassign_names_must_be_able_to_take_the_task() -> None:
    fit = AgentStanding(
        agent_id="b", known=True, skills=["writing"], status=AgentStatus.BUSY, capacity=2
    )
    assert agent_problem("g", "t", "writing", fit) is None
    cases = {
        "no agent 'b'": AgentStanding(agent_id="b"),
        "lacks the skill 'writing'": fit.model_copy(update={"skills": ["data"]}),
        "is offline and takes no work": fit.model_copy(update={"status": AgentStatus.OFFLINE}),
        "is full (2 of 2": fit.model_copy(update={"active_assignments": 2}),
    }
    for words, agent in cases.items():
        assert words in str(agent_problem("g", "t", "writing", agent)), words


def test_a_cancel_is_refused_for_a_task_that_ended() -> None:
    ask = TaskCancel(task_id="t", approver="lead")
    assert cancel_problem("g", ask, TaskStatus.ASSIGNED, False) is None
    assert cancel_problem("g", ask, TaskStatus.PENDING, False) is None
    assert "no such task" in str(cancel_problem("g", ask, None, False))
    assert "already ended (skipped)" in str(cancel_problem("g", ask, TaskStatus.SKIPPED, False))
    assert "reject the retry" in str(cancel_problem("g", ask, TaskStatus.FAILED, True))


def test_a_task_cancelled_before_it_starts_is_skipped_with_its_dependents() -> None:
    schedule = Schedule(Plan.build([("a", []), ("b", ["a"]), ("c", ["b"]), ("d", [])]))
    assert schedule.next_to_start(10) == [0, 3]
    ended = schedule.cancel(1, "cancelled by 'lead'")
    assert ended.skipped == [(1, "cancelled by 'lead'"), (2, "skipped: dependency 'b' skipped")]
    assert schedule.count(TaskStatus.SKIPPED) == 2
    with pytest.raises(ValueError, match="running"):
        schedule.cancel(0, "no")  # a running task ends through its workflow
    schedule.end(0, TaskStatus.COMPLETED)
    assert schedule.next_to_start(10) == []  # b was skipped: nothing became ready


def test_a_reassigned_task_goes_on_whatever_its_attempts() -> None:
    last = Standing(
        task_id="t", agent_id="a", assignment_id="x", attempt=3, attempts_used=3, max_attempts=3
    )
    step = reassigned(last, "reassigned to 'b' by 'lead'", "b")
    assert (step.status, step.assignment, step.prefer) == (
        TaskStatus.PENDING,
        AssignmentStatus.CANCELLED,
        "b",
    )
    assert step.exclude is None and not step.ended
    assert step.history[-1] == "attempt 3: taken from agent a, reassigned to 'b' by 'lead'"


# Over the wire.


async def refused_update(
    handle: WorkflowHandle[Any, Any], name: str, payload: Any, words: str
) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as failure:
        await handle.execute_update(name, payload)
    message = str(failure.value.cause)
    assert words in message, message
    return message


def control(kind: str, goal_id: str, payload: dict[str, Any], who: str) -> dict[str, Any]:
    request = CONTROLS[kind].model_validate(payload)
    return payload | {"signature": signing.sign_control(KEYS[who][0], kind, goal_id, request)}


async def goal_holds(handle: WorkflowHandle[Any, Any], task_id: str, attempt: int) -> None:
    """Wait until the goal has heard of the task's `attempt`-th assignment."""

    async def probe() -> bool:
        page = await handle.query("tasks", result_type=TaskPage)
        return any(t.task_id == task_id and t.attempts == attempt for t in page.tasks)

    await eventually(probe, PATIENCE, f"the goal to hear of attempt {attempt} of {task_id}")


async def replays(client: Client, *workflow_ids: str) -> None:
    """The workflows' fresh histories replay on this code: the controls are deterministic."""
    for workflow_id in workflow_ids:
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        await REPLAYER.replay_workflow(history)


async def add_agent(
    pool: asyncpg.Pool,
    agent_id: str,
    workspace: str,
    skills: tuple[str, ...] = ("writing",),
    status: str = "available",
    capacity: int = 4,
) -> str:
    """An agent of `workspace`, with a key (`KEYS["agent"]`) to sign its reports."""
    await pool.execute(
        "INSERT INTO agents (agent_id, workspace, skills, status, capacity, public_key) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        agent_id,
        workspace,
        list(skills),
        status,
        capacity,
        KEYS["agent"][1],
    )
    return agent_id


async def assignment(pool: asyncpg.Pool, assignment_id: str | None) -> asyncpg.Record:
    row = await pool.fetchrow(
        "SELECT a.status, g.active_assignments FROM assignments a JOIN agents g USING (agent_id) "
        "WHERE a.assignment_id = $1::uuid",
        assignment_id,
    )
    assert row is not None
    return row


async def test_a_task_reassigned_to_a_named_agent_completes_by_it_and_the_old_one_is_stale(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    first = await add_agent(pool, f"{workspace}-first", workspace)
    goal = await start_goal(client, goal_spec(1, workspace, approvers=["lead"]), task_queue)
    held = await wait_task(client, goal.id, "t1", TaskStatus.ASSIGNED)
    assert held.agent_id == first
    second = await add_agent(pool, f"{workspace}-second", workspace)
    await add_agent(pool, f"{workspace}-data", workspace, skills=("data",))
    await add_agent(pool, f"{workspace}-gone", workspace, status="offline")
    await add_agent(pool, f"{workspace}-full", workspace, capacity=1)
    await pool.execute(
        "UPDATE agents SET active_assignments = 1, status = 'busy' WHERE agent_id = $1",
        f"{workspace}-full",
    )
    ask = {"task_id": "t1", "approver": "lead", "comment": "stuck"}

    # Each refusal names why, and the task stays with its agent.
    refusals = {
        "'mallory' may not reassign a task of": ask | {"approver": "mallory"},
        "has no such task": ask | {"task_id": "nope"},
        "no agent 'nobody' in the goal's workspace": ask | {"agent": "nobody"},
        "lacks the skill 'writing'": ask | {"agent": f"{workspace}-data"},
        "is offline and takes no work": ask | {"agent": f"{workspace}-gone"},
        "is full (1 of 1 assignments)": ask | {"agent": f"{workspace}-full"},
        "already holds it": ask | {"agent": first},
        "counts for nothing": ask | {"assignment_id": "a-stale-one"},
        "task_id": ask | {"task_id": 5},
        "comment": ask | {"comment": "x" * 5000},
        "agent": ask | {"agent": "not an id!"},
        "extra": ask | {"extra": True},
    }
    for words, payload in refusals.items():
        await refused_update(goal, "reassign_task", payload, words)
    await refused_update(goal, "reassign_task", "not an object", "reassign request")
    still = await task_view(client, goal.id, "t1")
    assert (still.status, still.assignment_id, still.attempts) == (
        TaskStatus.ASSIGNED,
        held.assignment_id,
        1,
    )

    answer = await goal.execute_update(
        "reassign_task", ask | {"agent": second, "assignment_id": held.assignment_id}
    )
    assert Progress.model_validate(answer).status is GoalStatus.RUNNING
    moved = await wait_task(client, goal.id, "t1", TaskStatus.ASSIGNED, attempt=2)
    assert moved.agent_id == second
    assert f"taken from agent {first}, reassigned to '{second}' by 'lead': stuck" in str(
        moved.history
    )
    # The old agent's assignment is released, and its late report refused as stale.
    old = await assignment(pool, held.assignment_id)
    assert (old["status"], old["active_assignments"]) == ("cancelled", 0)
    late = {
        "agent_id": first,
        "assignment_id": held.assignment_id,
        "outcome": "completed",
        "result": "late",
    }
    task = client.get_workflow_handle(f"{goal.id}/t1")
    await refused_update(task, "report", late, "has lapsed")
    await report(client, moved)
    result: GoalReport = await goal.result()
    assert result.status is GoalStatus.COMPLETED
    done = await task_view(client, goal.id, "t1")
    assert (done.agent_id, done.result) == (second, "result of t1")
    await replays(client, goal.id, f"{goal.id}/t1")


async def test_a_task_reassigned_without_a_name_goes_to_another_agent_else_the_same_pool(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    """Never the end of the task, even on its last attempt: the agent did not fail it."""
    first = await add_agent(pool, f"{workspace}-first", workspace)
    spec = goal_spec(1, workspace, approvers=["lead"], max_attempts=1)
    goal = await start_goal(client, spec, task_queue)
    held = await wait_task(client, goal.id, "t1", TaskStatus.ASSIGNED)
    ask = {"task_id": "t1", "approver": "lead", "assignment_id": held.assignment_id}
    await goal.execute_update("reassign_task", ask)
    again = await wait_task(client, goal.id, "t1", TaskStatus.ASSIGNED, attempt=2)
    assert again.agent_id == first  # no other agent has the skill: the same pool
    await goal_holds(goal, "t1", 2)
    await refused_update(goal, "reassign_task", ask, "counts for nothing")  # a replay
    other = await add_agent(pool, f"{workspace}-other", workspace)
    await goal.execute_update("reassign_task", ask | {"assignment_id": again.assignment_id})
    moved = await wait_task(client, goal.id, "t1", TaskStatus.ASSIGNED, attempt=3)
    assert moved.agent_id == other
    await report(client, moved)
    assert (await goal.result()).status is GoalStatus.COMPLETED


async def test_a_cancelled_task_ends_skipped_with_its_dependents_and_the_goal_ends(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    spec = goal_spec(4, workspace, approvers=["lead"])
    spec["tasks"][1]["depends_on"] = ["t1"]
    spec["tasks"][2]["depends_on"] = ["t2"]
    goal = await start_goal(client, spec, task_queue)
    running = await wait_task(client, goal.id, "t1", TaskStatus.ASSIGNED)
    ask = {"task_id": "t2", "approver": "lead", "comment": "not needed"}
    refusals = {
        "'mallory' may not cancel a task of": ask | {"approver": "mallory"},
        "has no such task": ask | {"task_id": "nope"},
        "comment": ask | {"comment": "x" * 5000},
        "approver": ask | {"approver": ["lead"]},
    }
    for words, payload in refusals.items():
        await refused_update(goal, "cancel_task", payload, words)

    # Not started: skipped at once, and what depends on it too.
    after = Progress.model_validate(await goal.execute_update("cancel_task", ask))
    assert after.tasks_total == 4
    await refused_update(goal, "cancel_task", ask, "already ended (skipped)")  # a replay
    # Running: its agent is released, and its late report refused.
    await goal.execute_update("cancel_task", ask | {"task_id": "t1"})
    cancelled = await wait_task(client, goal.id, "t1", TaskStatus.SKIPPED)
    assert "cancelled by 'lead': not needed" in str(cancelled.error)
    assert (await assignment(pool, running.assignment_id))["status"] == "cancelled"
    task = client.get_workflow_handle(f"{goal.id}/t1")
    late = {"agent_id": running.agent_id, "assignment_id": running.assignment_id}

    async def closed() -> bool:
        return (await task.describe()).status is WorkflowExecutionStatus.COMPLETED

    await eventually(closed, PATIENCE, "the cancelled task's workflow to close")
    with pytest.raises(RPCError, match="already completed"):  # its workflow has ended
        await task.execute_update("report", late | {"outcome": "completed"})
    await refused_update(goal, "cancel_task", ask | {"task_id": "t1"}, "already ended")

    await report(client, await wait_task(client, goal.id, "t4", TaskStatus.ASSIGNED))
    result: GoalReport = await goal.result()
    assert result.status is GoalStatus.FAILED
    assert (result.progress.tasks_completed, result.progress.tasks_total) == (1, 4)
    skipped = await pool.fetch(
        "SELECT task_id, error FROM tasks WHERE goal_id = $1 AND status = 'skipped' "
        "ORDER BY task_id",
        goal.id,
    )
    assert [r["task_id"] for r in skipped] == ["t1", "t2", "t3"]
    assert "cancelled by 'lead'" in skipped[1]["error"]
    assert "dependency 't2'" in skipped[2]["error"]
    kinds = await pool.fetch(
        "SELECT task_id FROM events WHERE goal_id = $1 AND kind = 'task_cancelled' "
        "ORDER BY task_id",
        goal.id,
    )
    assert [r["task_id"] for r in kinds] == ["t1", "t2"]
    await replays(client, goal.id, f"{goal.id}/t1")


async def test_a_signed_goal_takes_reassigns_and_cancels_signed_by_an_approver_once(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    lead = f"{workspace}-lead"
    await register_approver_key(pool, lead, KEYS["lead"][1])
    await add_agent(pool, f"{workspace}-a", workspace)
    spec = goal_spec(2, workspace, approvers=[lead], require_signatures=True)
    goal = await start_goal(client, spec, task_queue)
    held = await wait_task(client, goal.id, "t1", TaskStatus.ASSIGNED)
    ask = {"task_id": "t1", "approver": lead, "assignment_id": held.assignment_id}

    await refused_update(goal, "reassign_task", ask, f"{lead!r} sent none")
    forged = control("reassign", goal.id, ask, "mallory")
    await refused_update(goal, "reassign_task", forged, "signature is not")
    elsewhere = control("reassign", "another-goal", ask, "lead")
    await refused_update(goal, "reassign_task", elsewhere, "over this reassign of this goal")
    loose = {k: v for k, v in ask.items() if k != "assignment_id"}
    await refused_update(
        goal, "reassign_task", control("reassign", goal.id, loose, "lead"), "'assignment_id'"
    )
    other = control("reassign", goal.id, ask | {"task_id": "t2"}, "lead")
    await refused_update(goal, "reassign_task", other, "counts for nothing")
    assert (await task_view(client, goal.id, "t1")).attempts == 1

    signed = control("reassign", goal.id, ask, "lead")
    await goal.execute_update("reassign_task", signed)
    await refused_update(goal, "reassign_task", signed, "already being taken")  # at once
    await wait_task(client, goal.id, "t1", TaskStatus.ASSIGNED, attempt=2)
    await goal_holds(goal, "t1", 2)
    await refused_update(goal, "reassign_task", signed, "counts for nothing")  # a replay

    cancel = {"task_id": "t2", "approver": lead, "comment": ""}
    await refused_update(goal, "cancel_task", cancel, "sent none")
    await refused_update(goal, "cancel_task", control("cancel", goal.id, cancel, "mallory"), "not")
    good = control("cancel", goal.id, cancel, "lead")
    await refused_update(goal, "cancel_task", good | {"comment": "changed"}, "signature is not")
    await goal.execute_update("cancel_task", good)
    await refused_update(goal, "cancel_task", good, "being cancelled")  # a replay, at once
    await wait_task(client, goal.id, "t2", TaskStatus.SKIPPED)

    async def ended() -> bool:
        return (await goal.query("progress", result_type=Progress)).tasks_running == 1

    await eventually(ended, PATIENCE, "the goal to hear t2 ended")
    await refused_update(goal, "cancel_task", good, "already ended")  # a replay, later
    await goal.execute_update(
        "cancel_task", control("cancel", goal.id, cancel | {"task_id": "t1"}, "lead")
    )
    result: GoalReport = await goal.result()
    assert (result.status, result.progress.tasks_completed) == (GoalStatus.FAILED, 0)


# Through the HTTP API and the CLI.


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned goal", "signed goal"])
async def test_reassign_and_cancel_through_the_api_as_the_tokens_person(
    api: httpx.AsyncClient,
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    workspace: str,
    signed: bool,
) -> None:
    first = await add_agent(pool, f"{workspace}-first", workspace)
    spec = goal_spec(2, workspace, approvers=["ops-lead"], require_signatures=signed)
    goal = await start_goal(client, spec, task_queue)
    held = await wait_task(client, goal.id, "t1", TaskStatus.ASSIGNED)
    second = await add_agent(pool, f"{workspace}-second", workspace)
    lead = await bearer(pool, "ops-lead", workspace)
    intruder = await bearer(pool, "intruder", workspace)
    stranger = await bearer(pool, "ops-lead", f"{workspace}-elsewhere")
    move, stop = f"/goals/{goal.id}/tasks/t1/reassign", f"/goals/{goal.id}/tasks/t2/cancel"

    refused(await api.post(move, json={}), 401, "missing token")
    refused(await api.post(move, json={}, headers=intruder), 409, "'intruder' may not")
    refused(await api.post(move, json={}, headers=stranger), 404, goal.id)
    unknown = f"/goals/{goal.id}/tasks/nope/reassign"
    refused(await api.post(unknown, json={}, headers=lead), 404, "no task 'nope'", "t1")
    refused(await api.post(move, json={"agent": 5}, headers=lead), 422, "agent")
    refused(await api.post(move, json={"comment": "x" * 5000}, headers=lead), 422, "comment")
    refused(await api.post(move, json={"agent": "ghost"}, headers=lead), 409, "no agent 'ghost'")
    refused(await api.post(move, json={"agent": first}, headers=lead), 409, "already holds it")
    trail = await pool.fetch(
        "SELECT message FROM events WHERE goal_id = $1 AND kind = 'action_refused'", goal.id
    )
    assert any("reassign_task by 'intruder' refused" in r["message"] for r in trail), trail
    assert (await task_view(client, goal.id, "t1")).assignment_id == held.assignment_id

    moved = await api.post(move, json={"agent": second, "comment": "faster"}, headers=lead)
    assert moved.status_code == 200, moved.text
    now = await wait_task(client, goal.id, "t1", TaskStatus.ASSIGNED, attempt=2)
    assert now.agent_id == second

    refused(await api.post(stop, json={"comment": 1}, headers=lead), 422, "comment")
    refused(await api.post(stop, headers=intruder), 409, "'intruder' may not")
    cancelled = await api.post(stop, json={"comment": "not needed"}, headers=lead)
    assert cancelled.status_code == 200, cancelled.text
    refused(await api.post(stop, headers=lead), 409, "being cancelled")
    task = client.get_workflow_handle(f"{goal.id}/t1")
    await task.execute_update("report", signed_report(now, KEYS["agent"][0]))
    result: GoalReport = await goal.result()
    assert (result.status, result.progress.tasks_completed) == (GoalStatus.FAILED, 1)
    refused(await api.post(stop, headers=lead), 404, "no running workflow")


async def test_task_reassign_and_cancel_from_the_cli_sign_with_the_approvers_key(
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    workspace: str,
    temporal_server: TemporalDevServer,
    database_url: str,
) -> None:
    lead = f"{workspace}-lead"
    address = temporal_server.address

    async def run(*args: str, code: int = 0) -> str:
        ran = await starter(database_url, *args, temporal_address=address)
        assert ran.code == code, (ran.out, ran.err)
        return ran.out + ran.err

    await run("approver", "key", "new", "--as", lead)
    await add_agent(pool, f"{workspace}-first", workspace)
    spec = goal_spec(2, workspace, approvers=[lead], require_signatures=True)
    goal = await start_goal(client, spec, task_queue)
    await wait_task(client, goal.id, "t1", TaskStatus.ASSIGNED)
    second = await add_agent(pool, f"{workspace}-second", workspace)
    t1, t2 = f"{goal.id}/t1", f"{goal.id}/t2"

    said = await run("task", "reassign", t1, "--agent", "ghost", "--as", lead, code=1)
    assert "no agent 'ghost'" in said
    said = await run("task", "reassign", t1, "--agent", second, "--approver", "mallory", code=1)
    assert "'mallory' may not reassign" in said
    said = await run("task", "reassign", t1, "--agent", second, "--as", lead)
    assert f"reassigned {t1}" in said and second in said
    moved = await wait_task(client, goal.id, "t1", TaskStatus.ASSIGNED, attempt=2)
    assert moved.agent_id == second

    printed = await run("sign", t2, "--control", "cancel", "--as", lead, "--comment", "later")
    assert "--name cancel_task" in printed
    said = await run("task", "cancel", t2, "--as", lead, "--comment", "not needed")
    assert f"cancelled {t2}" in said
    said = await run("task", "cancel", t2, "--as", lead, code=1)
    assert "already ended (skipped)" in said
    said = await run("task", "cancel", "no-slash", "--as", lead, code=2)
    assert "GOAL_ID/TASK_ID" in said
    task = client.get_workflow_handle(f"{goal.id}/t1")
    await task.execute_update("report", signed_report(moved, KEYS["agent"][0]))
    assert (await goal.result()).progress.tasks_completed == 1


async def test_a_goal_in_partitions_refuses_reassign_and_cancel_with_the_reason(
    client: Client, task_queue: str, workspace: str
) -> None:
    spec = goal_spec(3, workspace, approvers=["lead"], partition_size=2)
    goal = await start_goal(client, spec, task_queue)

    async def running() -> bool:
        return (await goal.query("progress", result_type=Progress)).tasks_running > 0

    await eventually(running, PATIENCE, "a task of the goal to run")
    ask = {"task_id": "t1", "approver": "lead"}
    await refused_update(goal, "reassign_task", ask, "runs in partitions")
    await refused_update(goal, "cancel_task", ask, "runs in partitions")
    await goal.execute_update("stop", {"approver": "lead", "comment": "done here"})
