"""Cleanup: agents provisioned for a goal are retired when it ends, unless they hold work."""

import uuid

import asyncpg
from temporalio.client import Client

from goalkeeper.statuses import GoalStatus, TaskStatus
from tests.helpers import events, goal_spec, report, start_goal, wait_task


async def test_provisioned_agents_retire_when_their_goal_ends_and_they_are_idle(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    skill = f"rare-{uuid.uuid4().hex[:6]}"
    first = goal_spec(workspace=workspace)
    first["tasks"] = [
        {"id": "quick", "title": "Quick", "skill": skill},
        {"id": "slow", "title": "Slow", "skill": "writing"},
    ]
    goal_a = await start_goal(client, first, task_queue)
    quick = await wait_task(client, goal_a.id, "quick", TaskStatus.ASSIGNED)
    provisioned = quick.agent_id
    assert provisioned and provisioned.startswith("auto-")
    await report(client, quick)
    await wait_task(client, goal_a.id, "quick", TaskStatus.COMPLETED)

    # Goal B's task goes to the same agent, idle now, while goal A still runs.
    second = goal_spec(workspace=workspace)
    second["tasks"] = [{"id": "other", "title": "Other", "skill": skill}]
    goal_b = await start_goal(client, second, task_queue)
    other = await wait_task(client, goal_b.id, "other", TaskStatus.ASSIGNED)
    assert other.agent_id == provisioned

    slow = await wait_task(client, goal_a.id, "slow", TaskStatus.ASSIGNED)
    await report(client, slow)
    assert (await goal_a.result()).status is GoalStatus.COMPLETED
    status = await pool.fetchval("SELECT status FROM agents WHERE agent_id = $1", provisioned)
    assert status == "busy"  # holds goal B's work: kept
    writer = slow.agent_id
    assert await pool.fetchval("SELECT status FROM agents WHERE agent_id = $1", writer) == (
        "retired"
    )

    await report(client, other)
    assert (await goal_b.result()).status is GoalStatus.COMPLETED
    row = await pool.fetchrow(
        "SELECT status, active_assignments FROM agents WHERE agent_id = $1", provisioned
    )
    assert row is not None and (row["status"], row["active_assignments"]) == ("retired", 0)
    retired = await events(pool, goal_a.id, "agent_retired")
    assert {e["agent_id"] for e in retired} == {provisioned, writer}
    assert "provisioned for goal" in retired[0]["message"]

    # A retired agent gets no more work: a new goal provisions a fresh one.
    third = goal_spec(workspace=workspace)
    third["tasks"] = [{"id": "again", "title": "Again", "skill": skill}]
    goal_c = await start_goal(client, third, task_queue)
    again = await wait_task(client, goal_c.id, "again", TaskStatus.ASSIGNED)
    assert again.agent_id not in (provisioned, writer)


async def test_registered_agents_are_never_retired(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    agent_id = f"{workspace}-registered"
    await pool.execute(
        "INSERT INTO agents (agent_id, workspace, skills) VALUES ($1, $2, '{writing}')",
        agent_id,
        workspace,
    )
    handle = await start_goal(client, goal_spec(1, workspace), task_queue)
    view = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED)
    assert view.agent_id == agent_id
    await report(client, view)
    assert (await handle.result()).status is GoalStatus.COMPLETED
    assert await pool.fetchval("SELECT status FROM agents WHERE agent_id = $1", agent_id) == (
        "available"
    )
