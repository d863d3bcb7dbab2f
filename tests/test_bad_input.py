"""Bad input sent with the `temporal` CLI is rejected and recorded, and wedges nothing."""

import asyncio
import json
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from goalkeeper.statuses import GoalStatus, TaskStatus
from interfaces.stack import TemporalDevServer
from tests.helpers import (
    PATIENCE,
    events,
    eventually,
    goal_spec,
    new_goal_id,
    one_of,
    report,
    run_temporal,
    start_goal,
    wait_task,
)


async def test_malformed_signals_are_recorded_and_the_workflow_keeps_running(
    client: Client,
    task_queue: str,
    workspace: str,
    pool: asyncpg.Pool,
    temporal_server: TemporalDevServer,
    tmp_path: Path,
) -> None:
    handle = await start_goal(client, goal_spec(1, workspace), task_queue)
    view = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED)
    task = f"{handle.id}/t1"
    ids = {"agent_id": view.agent_id, "assignment_id": view.assignment_id}
    payloads = {
        "wrong types": {"agent_id": 5, "assignment_id": view.assignment_id, "outcome": "completed"},
        "missing fields": {"agent_id": view.agent_id},
        "not an object": "garbage",
        "unknown outcome": {**ids, "outcome": "done-ish"},
        "oversized result": {**ids, "outcome": "completed", "result": "x" * 200_000},
    }
    for payload in payloads.values():
        file = tmp_path / "payload.json"
        file.write_text(json.dumps(payload))
        code, out = await run_temporal(
            temporal_server,
            "workflow",
            "signal",
            "-w",
            task,
            "--name",
            "agent_report",
            "--input-file",
            str(file),
        )
        assert code == 0, out  # a signal is fire-and-forget; the workflow judges it

    async def recorded() -> list[str] | None:
        rows = await events(pool, handle.id, "report_rejected")
        return [r["message"] for r in rows] if len(rows) >= len(payloads) else None

    messages = await eventually(recorded, what="every bad report recorded")
    assert len(messages) == len(payloads), messages
    one_of(messages, "agent_id: Input should be a valid string, got 5")
    one_of(messages, "assignment_id: Field required")
    one_of(messages, "expected a JSON object, got str 'garbage'")
    one_of(messages, "outcome: Input should be 'completed' or 'failed', got 'done-ish'")
    one_of(messages, "a result of 200002 bytes is over the 131072 byte inline limit")

    # Not JSON at all: the CLI refuses it before anything is sent.
    code, out = await run_temporal(
        temporal_server,
        "workflow",
        "signal",
        "-w",
        task,
        "--name",
        "agent_report",
        "--input",
        "{not json",
    )
    assert code != 0
    # Beyond Temporal's payload limit: the server refuses it; the workflow never sees it.
    huge = tmp_path / "huge.json"
    huge.write_text(json.dumps({**ids, "outcome": "completed", "result": "x" * 3_000_000}))
    code, out = await run_temporal(
        temporal_server,
        "workflow",
        "signal",
        "-w",
        task,
        "--name",
        "agent_report",
        "--input-file",
        str(huge),
    )
    assert code != 0 and "size" in out.lower(), out
    # A task that does not exist.
    code, out = await run_temporal(
        temporal_server,
        "workflow",
        "signal",
        "-w",
        f"{handle.id}/no-such-task",
        "--name",
        "agent_report",
        "--input",
        json.dumps(ids),
    )
    assert code != 0 and "not found" in out.lower(), out
    # An update answers at once, with the reason.
    code, out = await run_temporal(
        temporal_server,
        "workflow",
        "update",
        "execute",
        "-w",
        task,
        "--name",
        "report",
        "--input",
        json.dumps({**ids, "agent_id": "impostor", "outcome": "completed"}),
    )
    assert code != 0 and "agent 'impostor' does not hold assignment" in out, out

    unchanged = await handle.query("progress")
    assert unchanged["status"] == "running" and unchanged["tasks_running"] == 1
    await report(client, view)
    assert (await handle.result()).status is GoalStatus.COMPLETED


async def test_a_report_for_a_finished_goal_is_refused_to_its_sender(
    client: Client,
    task_queue: str,
    workspace: str,
    pool: asyncpg.Pool,
    temporal_server: TemporalDevServer,
) -> None:
    handle = await start_goal(client, goal_spec(1, workspace), task_queue)
    view = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED)
    await report(client, view)
    await handle.result()
    late = json.dumps(
        {"agent_id": view.agent_id, "assignment_id": view.assignment_id, "outcome": "failed"}
    )
    for kind, name in (("update", "report"), ("signal", "agent_report")):
        command = ["update", "execute"] if kind == "update" else ["signal"]
        code, out = await run_temporal(
            temporal_server,
            "workflow",
            *command,
            "-w",
            f"{handle.id}/t1",
            "--name",
            name,
            "--input",
            late,
        )
        assert code != 0 and "already completed" in out, out


async def test_a_task_workflow_started_by_hand_with_nonsense_fails_at_once_and_is_recorded(
    client: Client, pool: asyncpg.Pool, task_queue: str
) -> None:
    goal_id = new_goal_id()
    handle = await client.start_workflow(
        "TaskWorkflow", {"nonsense": 1}, id=f"{goal_id}/t1", task_queue=task_queue
    )
    with pytest.raises(WorkflowFailureError) as failed:
        await asyncio.wait_for(handle.result(), PATIENCE)  # fails, not retried for ever
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "InvalidTaskInput"
    assert cause.non_retryable and "invalid task input" in cause.message
    assert "goal_id: Field required" in cause.message  # names what is missing
    [recorded] = await events(pool, goal_id, "task_input_rejected")
    assert recorded["task_id"] == "t1" and "started by their GoalWorkflow" in recorded["message"]


async def test_a_partition_started_by_hand_with_nonsense_fails_at_once(
    client: Client, task_queue: str
) -> None:
    handle = await client.start_workflow(
        "PartitionWorkflow", {"nonsense": 1}, id=f"{new_goal_id()}/p0", task_queue=task_queue
    )
    with pytest.raises(WorkflowFailureError) as failed:
        await asyncio.wait_for(handle.result(), PATIENCE)
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "InvalidPartitionInput"
    assert cause.non_retryable and "invalid partition input" in cause.message


async def test_a_goal_or_request_started_with_an_unknown_encoding_is_rejected_by_name(
    client: Client, pool: asyncpg.Pool, task_queue: str, temporal_server: TemporalDevServer
) -> None:
    goal_id = new_goal_id()
    cases = (("GoalWorkflow", goal_id, "InvalidGoalSpec"), ("RequestWorkflow", f"q-{goal_id}", ""))
    for workflow_type, workflow_id, error_type in cases:
        code, out = await run_temporal(
            temporal_server,
            *("workflow", "start", "--type", workflow_type, "--task-queue", task_queue),
            *("--workflow-id", workflow_id, "--input", '"x"'),
            *("--input-meta", "encoding=binary/made-up"),
        )
        assert code == 0, out
        with pytest.raises(WorkflowFailureError) as failed:
            await asyncio.wait_for(client.get_workflow_handle(workflow_id).result(), PATIENCE)
        cause = failed.value.cause
        assert isinstance(cause, ApplicationError) and cause.non_retryable, cause
        assert "'binary/made-up'" in cause.message and "cannot be decoded" in cause.message
        assert not error_type or cause.type == error_type
    [rejected] = await events(pool, goal_id, "goal_rejected")
    assert "binary/made-up" in rejected["message"]


async def test_a_health_check_started_with_the_wrong_input_fails_at_once(
    client: Client, task_queue: str
) -> None:
    handle = await client.start_workflow(
        "HealthCheckWorkflow", "x", id=f"health-{new_goal_id()}", task_queue=task_queue
    )
    with pytest.raises(WorkflowFailureError) as failed:
        await asyncio.wait_for(handle.result(), PATIENCE)
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "InvalidHealthCheck"
    assert "expected a JSON object" in cause.message
