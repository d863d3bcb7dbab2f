"""What the Temporal UI shows: search attributes and a one-glance status per goal."""

from pathlib import Path

from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client

from goalkeeper.statuses import TaskStatus
from interfaces.stack import TemporalDevServer, free_port
from tests.helpers import decide, eventually, goal_spec, report, start_goal, wait_task
from workflows import search_attributes


async def test_current_details_and_search_attributes_follow_the_goal(
    client: Client, task_queue: str, workspace: str
) -> None:
    spec = goal_spec(2, workspace, approvers=["ops-lead"])
    spec["tasks"][1].update(requires_approval=True, title="Write email 2")
    handle = await start_goal(client, spec, task_queue)
    first = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED)
    second = await wait_task(client, handle.id, "t2", TaskStatus.ASSIGNED)
    await report(client, first)
    await report(client, second)
    await wait_task(client, handle.id, "t2", TaskStatus.AWAITING_APPROVAL)

    async def details() -> str | None:
        meta = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
        text = meta.current_details
        return text if "waiting on approver ops-lead for 'Write email 2'" in text else None

    shown = await eventually(details, what="current details naming the approver")
    assert "**1 of 2 tasks done** (50.0%)" in shown

    await decide(client, handle.id, "t2", "ops-lead", "approve")
    await handle.result()
    query = (
        f'WorkflowId = "{handle.id}" AND GoalStatus = "completed" AND GoalProgress = 100 '
        f'AND GoalWorkspace = "{workspace}"'
    )

    async def listed() -> int:
        return len([w async for w in client.list_workflows(query)])

    assert await eventually(listed, what="the goal in a visibility query") == 1
    tasks = f'AssignedAgent = "{first.agent_id}" AND TaskStatus = "completed"'

    async def task_listed() -> int:
        return len([w async for w in client.list_workflows(tasks)])

    assert await eventually(task_listed, what="the task by its agent") >= 1


async def test_the_worker_registers_missing_search_attributes(tmp_path: Path) -> None:
    server = TemporalDevServer(
        tmp_path / "bare.db", port=free_port(), ui_port=None, register_search_attributes=False
    )
    server.start()
    try:
        client = await Client.connect(server.address)
        added = await search_attributes.ensure_registered(client, "default")
        assert added == sorted(search_attributes.ALL)
        assert await search_attributes.ensure_registered(client, "default") == []
    finally:
        server.stop()
