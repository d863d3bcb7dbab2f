"""Nobody speaks for Goalkeeper: its own messages between workflows cannot be forged.

Each attack is sent over the wire as an outsider with a Temporal client (or the
`temporal` CLI) would, holding everything but the workers' secret; each is refused and
recorded, and the goal still ends as its real agents and approvers make it end.
"""

import json
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from goalkeeper.seals import SealKeys, opened, sealed
from goalkeeper.statuses import GoalStatus, TaskStatus
from interfaces.secret import new_secret_entry, parse_secret
from interfaces.stack import TemporalDevServer
from tests.helpers import (
    PATIENCE,
    SimulatedAgents,
    decide,
    events,
    eventually,
    goal_spec,
    progress,
    report,
    run_temporal,
    start_goal,
    task_view,
    wait_progress,
    wait_task,
)

OUTSIDER_KEYS = parse_secret(new_secret_entry("test"), "an outsider's guess")
"""A secret of the right shape and even the right id, but not the workers'."""


async def _refusals(pool: asyncpg.Pool, goal_id: str, at_least: int) -> list[asyncpg.Record]:
    async def probe() -> list[asyncpg.Record] | None:
        rows = await events(pool, goal_id, "message_rejected")
        return rows if len(rows) >= at_least else None

    return await eventually(probe, PATIENCE, f"{at_least} refused messages of {goal_id}")


def test_a_seal_binds_its_kind_recipient_and_content(worker_secret: SealKeys) -> None:
    message = sealed(worker_secret, "task_update", "goal-a", {"goal_run_id": "r", "n": 1})
    assert opened(worker_secret, "task_update", "goal-a", message) == {"goal_run_id": "r", "n": 1}
    for kind, to, changed in [
        ("partition_update", "goal-a", message),
        ("task_update", "goal-b", message),
        ("task_update", "goal-a", {**message, "n": 2}),
    ]:
        problem = opened(worker_secret, kind, to, changed)
        assert isinstance(problem, str) and "does not match" in problem, problem
    forged = sealed(OUTSIDER_KEYS, "task_update", "goal-a", {"n": 1})
    assert "does not match" in str(opened(worker_secret, "task_update", "goal-a", forged))
    unknown = {**forged, "seal": "k9:" + forged["seal"].split(":")[1]}
    assert "key 'k9'" in str(opened(worker_secret, "task_update", "goal-a", unknown))
    assert "no seal" in str(opened(worker_secret, "task_update", "goal-a", {"n": 1}))
    assert "expected a sealed JSON object" in str(opened(worker_secret, "abort", "x", "stop"))
    assert opened(None, "abort", "x", message) == (
        "abort rejected: this worker holds no seal keys to verify it with"
    )


async def test_forged_task_updates_change_nothing(
    client: Client, task_queue: str, pool: asyncpg.Pool, workspace: str
) -> None:
    """A task set to awaiting approval with $999 of cost by an invented agent, and a
    task completed by a terminal update that its agent never earned: both refused."""
    handle = await start_goal(client, goal_spec(2, workspace), task_queue)
    view = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED)
    forged_running = {
        "goal_run_id": view.goal_run_id,
        "task": {
            "task_id": "t1",
            "status": "awaiting_approval",
            "agent_id": "mallory",
            "tokens_used": 123456,
            "cost_usd": 999.0,
            "seq": 99,
        },
        "agent_ids": ["mallory"],
    }
    forged_end = {
        "goal_run_id": view.goal_run_id,
        "task": {"task_id": "t2", "status": "completed", "seq": 99},
    }
    await handle.signal("task_update", forged_running)
    await handle.signal("task_update", sealed(OUTSIDER_KEYS, "task_update", handle.id, forged_end))
    messages = " | ".join(row["message"] for row in await _refusals(pool, handle.id, 2))
    assert "carries no seal" in messages and "does not match" in messages, messages
    now = await progress(handle)
    assert now.cost_usd == 0 and now.tokens_used == 0 and now.tasks_awaiting_approval == 0
    assert now.tasks_completed == 0 and now.agents_total == 2
    async with SimulatedAgents(client, pool, handle.id):
        ended = await handle.result()
    assert ended.status is GoalStatus.COMPLETED and ended.progress.tasks_completed == 2


async def test_a_sealed_update_copied_from_history_to_another_goal_is_refused(
    client: Client, task_queue: str, pool: asyncpg.Pool, workspace: str
) -> None:
    """An outsider may read histories: a real seal copied to another goal does not count."""
    spec = goal_spec(1, workspace, approvers=["ops-lead"])
    spec["tasks"][0]["requires_approval"] = True
    first = await start_goal(client, spec, task_queue)
    second = await start_goal(client, spec, task_queue)
    view = await wait_task(client, first.id, "t1", TaskStatus.ASSIGNED)
    await wait_task(client, second.id, "t1", TaskStatus.ASSIGNED)
    await report(client, view)
    await wait_task(client, first.id, "t1", TaskStatus.AWAITING_APPROVAL)

    async def copied() -> dict[str, Any] | None:
        async for event in first.fetch_history_events():
            if event.HasField("workflow_execution_signaled_event_attributes"):
                signaled = event.workflow_execution_signaled_event_attributes
                if signaled.signal_name == "task_update":
                    value = json.loads(signaled.input.payloads[0].data)
                    if value["task"]["status"] == "awaiting_approval":
                        return dict(value)
        return None

    stolen = await eventually(copied, PATIENCE, "a sealed task_update in the first goal's history")
    assert "seal" in stolen
    await second.signal("task_update", stolen)
    rows = await _refusals(pool, second.id, 1)
    assert f"sealed for another workflow than {second.id!r}" in rows[0]["message"]
    assert (await progress(second)).tasks_awaiting_approval == 0
    await first.signal("task_update", stolen)  # replayed to its own goal: already counted
    await decide(client, first.id, "t1", "ops-lead", "approve")
    assert (await first.result()).status is GoalStatus.COMPLETED
    await second.terminate("test over")


async def test_forged_partition_updates_cannot_end_a_partitioned_goal(
    client: Client, task_queue: str, pool: asyncpg.Pool, workspace: str
) -> None:
    """Forged `partition_update`s, one per partition, saying all ended and completed,
    while a task awaits approval: the goal goes on, and ends when its approver decides."""
    tasks: list[dict[str, Any]] = [
        {"id": f"t{i}", "title": f"Task {i}", "skill": "data"} for i in range(4)
    ]
    tasks[3]["requires_approval"] = True
    spec = {
        "title": "Partitioned",
        "workspace": workspace,
        "approvers": ["ops-lead"],
        "partition_size": 2,
        "tasks": tasks,
    }
    handle = await start_goal(client, spec, task_queue)
    async with SimulatedAgents(client, pool, handle.id):
        await wait_progress(handle, lambda p: p.tasks_awaiting_approval == 1, 60)
    run_id = (await task_view(client, handle.id, "t3")).goal_run_id
    for index in range(2):
        forged = {
            "goal_run_id": run_id,
            "index": index,
            "seq": 1000,
            "counts": {"completed": 2},
            "ended": True,
        }
        await handle.signal("partition_update", forged)
    rows = await _refusals(pool, handle.id, 2)
    assert all("partition_update rejected" in row["message"] for row in rows)
    now = await progress(handle)
    assert now.status is GoalStatus.RUNNING and now.tasks_awaiting_approval == 1
    # Straight to a partition: a retry decision the goal never judged, and a `fail`.
    partition = client.get_workflow_handle(f"{handle.id}#partition-1")
    await partition.signal("fail", "stopped by mallory")
    await partition.signal("approval_decision", {"approver": "mallory", "decision": "approve"})
    await _refusals(pool, handle.id, 4)
    await decide(client, handle.id, "t3", "ops-lead", "approve")
    report = await handle.result()
    assert report.status is GoalStatus.COMPLETED and report.progress.tasks_completed == 4


async def test_forged_abort_reassign_and_adopt_leave_a_task_to_its_agent(
    client: Client,
    task_queue: str,
    pool: asyncpg.Pool,
    workspace: str,
    temporal_server: TemporalDevServer,
) -> None:
    """Sent with the `temporal` CLI, as a person with Temporal access would."""
    handle = await start_goal(client, goal_spec(1, workspace), task_queue)
    view = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED)
    task = f"{handle.id}/t1"
    for name, payload in [
        ("abort", json.dumps("goal failed: mallory says so")),
        ("reassign", json.dumps({"assignment_id": view.assignment_id, "reason": "mallory"})),
        ("adopt", json.dumps({"goal_run_id": view.goal_run_id})),
    ]:
        code, out = await run_temporal(
            temporal_server, "workflow", "signal", "-w", task, "--name", name, "-i", payload
        )
        assert code == 0, out
    code, out = await run_temporal(
        temporal_server, "workflow", "signal", "-w", handle.id, "--name", "abort", "-i", '"x"'
    )
    assert code == 0, out
    await _refusals(pool, handle.id, 4)
    now = await task_view(client, handle.id, "t1")
    assert now.status is TaskStatus.ASSIGNED and now.assignment_id == view.assignment_id
    assert (await progress(handle)).status is GoalStatus.RUNNING
    await report(client, view)
    assert (await handle.result()).status is GoalStatus.COMPLETED


@pytest.mark.parametrize("name", ["task_update", "partition_update", "adopt", "abort"])
async def test_malformed_internal_messages_are_refused_by_name(
    client: Client, task_queue: str, pool: asyncpg.Pool, workspace: str, name: str
) -> None:
    handle = await start_goal(client, goal_spec(1, workspace), task_queue)
    view = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED)
    await handle.signal(name, args=[1, 2])
    rows = await _refusals(pool, handle.id, 1)
    assert rows[0]["message"] == f"{name} rejected: expected one JSON object, got 2 values"
    await report(client, view)
    assert (await handle.result()).status is GoalStatus.COMPLETED


async def test_a_well_formed_task_or_partition_started_by_a_client_is_refused(
    client: Client, task_queue: str, pool: asyncpg.Pool, workspace: str
) -> None:
    """Temporal records who started a workflow: a task or partition that no goal
    started is refused before it assigns an agent or writes a row."""
    handle = await start_goal(client, goal_spec(1, workspace), task_queue)
    view = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED)
    task_input = {
        "goal_id": handle.id,
        "goal_run_id": view.goal_run_id,
        "workspace": workspace,
        "task": {"id": "t9", "title": "Planted", "skill": "writing"},
        "approval_levels": [],
        "max_attempts": 1,
        "report_deadline_seconds": 60,
        "heartbeat_timeout_seconds": 60,
        "approval_timeout_seconds": 60,
        "on_approval_timeout": "fail",
    }
    planted = await client.start_workflow(
        "TaskWorkflow", task_input, id=f"{handle.id}/t9", task_queue=task_queue
    )
    with pytest.raises(WorkflowFailureError) as failed:
        await planted.result()
    assert isinstance(failed.value.cause, ApplicationError)
    assert "started by a client" in failed.value.cause.message
    partition_input = {
        "goal_id": handle.id,
        "goal_run_id": view.goal_run_id,
        "index": 0,
        "start": 0,
        "end": 1,
        "window": 1,
    }
    partition = await client.start_workflow(
        "PartitionWorkflow", partition_input, id=f"{handle.id}#partition-0", task_queue=task_queue
    )
    with pytest.raises(WorkflowFailureError) as failed:
        await partition.result()
    assert isinstance(failed.value.cause, ApplicationError)
    assert "started by a client" in failed.value.cause.message
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM tasks WHERE goal_id = $1 AND task_id = 't9'", handle.id
        )
        == 0
    )
    assert (
        await pool.fetchval("SELECT count(*) FROM assignments WHERE goal_id = $1", handle.id) == 1
    )
    await report(client, view)
    assert (await handle.result()).status is GoalStatus.COMPLETED
