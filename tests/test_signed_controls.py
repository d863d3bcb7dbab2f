"""Everything that changes a signed goal is signed: budget raises, stops, added tasks and
retry decisions, each by someone allowed to make it, and none counts twice.

Each forgery is sent over the wire as an outsider with a Temporal client would; each is
refused with its reason, and the goal still ends as its real agents and approvers make it.
"""

from typing import Any

import asyncpg
import pytest
from temporalio.client import (
    Client,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)

from goalkeeper import signing
from goalkeeper.controls import CONTROLS
from goalkeeper.models import Progress
from goalkeeper.statuses import GoalStatus, TaskStatus
from interfaces.stack import TemporalDevServer
from store.keys import register_approver_key
from tests.helpers import (
    PATIENCE,
    events,
    eventually,
    goal_spec,
    run_temporal,
    start_goal,
    wait_task,
)
from tests.starter import starter
from tests.test_signatures import signed_report

KEYS = {name: signing.new_keys() for name in ("agent", "lead", "mallory")}


async def refused(handle: WorkflowHandle[Any, Any], name: str, payload: Any, words: str) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as failure:
        await handle.execute_update(name, payload)
    message = str(failure.value.cause)
    assert words in message, message
    return message


def control(kind: str, goal_id: str, payload: dict[str, Any], who: str) -> dict[str, Any]:
    request = CONTROLS[kind].model_validate(payload)
    return payload | {"signature": signing.sign_control(KEYS[who][0], kind, goal_id, request)}


async def _signed_team(pool: asyncpg.Pool, workspace: str) -> tuple[str, str]:
    """An agent with a key in `workspace`, and an approver with a key; their names."""
    agent, lead = f"{workspace}-agent", f"{workspace}-lead"
    await pool.execute(
        "INSERT INTO agents (agent_id, workspace, skills, public_key, capacity) "
        "VALUES ($1, $2, '{writing}', $3, 4)",
        agent,
        workspace,
        KEYS["agent"][1],
    )
    await register_approver_key(pool, lead, KEYS["lead"][1])
    return agent, lead


async def _finish(client: Client, goal_id: str, task_id: str) -> None:
    view = await wait_task(client, goal_id, task_id, TaskStatus.ASSIGNED)
    task = client.get_workflow_handle(f"{goal_id}/{task_id}")
    await task.execute_update("report", signed_report(view, KEYS["agent"][0]))


async def test_unsigned_raises_stops_and_additions_are_refused_on_a_signed_goal(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    _, lead = await _signed_team(pool, workspace)
    spec = goal_spec(2, workspace, approvers=[lead], require_signatures=True, budget_usd=0.001)
    spec["tasks"][1]["depends_on"] = ["t1"]
    goal = await start_goal(client, spec, task_queue)
    await _finish(client, goal.id, "t1")  # spends $0.001: the goal pauses at its budget

    async def paused() -> Progress | None:
        now = await goal.query("progress", result_type=Progress)
        return now if now.stage.startswith("paused: budget") else None

    await eventually(paused, PATIENCE, "the goal to pause at its budget")
    # A raise naming the approver, unsigned; signed by another key; for another goal.
    raise_ = {"approver": lead, "usd": 500.0, "comment": ""}
    await refused(goal, "raise_budget", raise_, f"requires signatures and {lead!r} sent none")
    await refused(goal, "raise_budget", control("raise_budget", goal.id, raise_, "mallory"), "not")
    elsewhere = control("raise_budget", "another-goal", raise_, "lead")
    await refused(goal, "raise_budget", elsewhere, "over this raise_budget of this goal")
    # A stop, unsigned and by a stranger.
    await refused(goal, "stop", {"approver": lead, "comment": "bye"}, "sent none")
    await refused(goal, "stop", {"approver": "boss", "comment": "bye"}, "'boss' may not stop")
    # Tasks added by an outsider, and by the approver unsigned.
    task = {"id": "extra", "title": "Extra", "skill": "writing"}
    outsider = {"tasks": [task], "added_by": "mallory", "reason": "more"}
    await refused(goal, "add_tasks", outsider, "expected added_by to be one of its approvers")
    unsigned = {"tasks": [task], "added_by": lead, "reason": "more"}
    await refused(goal, "add_tasks", unsigned, "sent none")
    assert (await goal.query("progress", result_type=Progress)).tasks_total == 2

    # The approver's own, signed: the raise counts once; the added task runs.
    raised = control("raise_budget", goal.id, {"approver": lead, "usd": 1.0, "comment": ""}, "lead")
    await goal.execute_update("raise_budget", raised)
    await refused(goal, "raise_budget", raised, "not above the budget")  # a replay
    added = control("add_tasks", goal.id, unsigned, "lead")
    await goal.execute_update("add_tasks", added)
    await refused(goal, "add_tasks", added, "extra")  # a replay: the id is taken
    await _finish(client, goal.id, "t2")
    await _finish(client, goal.id, "extra")
    report = await goal.result()
    assert report.status is GoalStatus.COMPLETED and report.progress.tasks_completed == 3


async def test_a_signed_stop_stops_and_the_cli_signs_what_it_sends(
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    workspace: str,
    temporal_server: TemporalDevServer,
    database_url: str,
) -> None:
    """`budget stop` signs with the approver's key here; `sign --control` prints a change
    the `temporal` CLI sends as it is."""
    lead = f"{workspace}-lead"
    address = temporal_server.address

    async def run(*args: str) -> str:
        ran = await starter(database_url, *args, temporal_address=address)
        assert ran.code == 0, ran.err
        return ran.out

    await run("approver", "key", "new", "--as", lead)
    spec = goal_spec(1, workspace, approvers=[lead], require_signatures=True, budget_usd=5.0)
    goal = await start_goal(client, spec, task_queue)
    await wait_task(client, goal.id, "t1", TaskStatus.ASSIGNED)
    printed = await run("sign", goal.id, "--control", "raise_budget", "--usd", "9", "--as", lead)
    signed_input = printed.split("--input '")[1].rsplit("'", 1)[0]
    code, out = await run_temporal(
        temporal_server,
        "workflow",
        "update",
        "execute",
        "--workflow-id",
        goal.id,
        "--name",
        "raise_budget",
        "--input",
        signed_input,
    )
    assert code == 0, out
    await run("budget", "stop", goal.id, "--as", lead, "--comment", "enough")
    with pytest.raises(WorkflowFailureError) as failed:
        await goal.result()
    assert f"stopped by {lead!r}: enough" in str(failed.value.cause)


async def test_a_signed_retry_decision_counts_once(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    """A retry decision names the failed attempt: replayed on the next failure, it is
    refused, so the approver decides again."""
    agent, lead = await _signed_team(pool, workspace)
    spec = goal_spec(
        1,
        workspace,
        approvers=[lead],
        require_signatures=True,
        on_task_failure="ask_approver",
        max_attempts=1,
    )
    goal = await start_goal(client, spec, task_queue)

    async def fail_once(attempt: int) -> None:
        view = await wait_task(client, goal.id, "t1", TaskStatus.ASSIGNED, attempt=attempt)
        task = client.get_workflow_handle(f"{goal.id}/t1")
        failed = signed_report(view, KEYS["agent"][0], outcome="failed", result=None, error="no")
        await task.execute_update("report", failed)

        async def due() -> Progress | None:
            now = await goal.query("progress", result_type=Progress)
            return now if "awaiting a retry decision" in now.stage else None

        await eventually(due, PATIENCE, "a retry decision to be due")

    await fail_once(1)
    retry = {"approver": lead, "decision": "approve", "comment": "", "task_id": "t1"}
    await refused(goal, "decide", retry, "expected the failed attempt")
    await refused(goal, "decide", retry | {"attempt": 1}, "sent none")
    first = control("retry", goal.id, retry | {"attempt": 1}, "lead")
    await goal.execute_update("decide", first)
    await fail_once(2)
    await refused(goal, "decide", first, "which failed at attempt 2")  # the replay
    await goal.signal("approval_decision", first)

    async def recorded() -> Any:
        rows = await events(pool, goal.id, "decision_rejected")
        return rows or None

    [row] = await eventually(recorded, PATIENCE, "the replayed decision, in the trail")
    assert "failed at attempt 2" in row["message"]
    give_up = control("retry", goal.id, retry | {"attempt": 2, "decision": "reject"}, "lead")
    await goal.execute_update("decide", give_up)
    report = await goal.result()
    assert report.progress.tasks_failed == 1 and agent
