"""Assignment against a real PostgreSQL: least loaded first, never racing, always an agent."""

import asyncio
import uuid
from pathlib import Path

import asyncpg
import pytest
from pydantic import TypeAdapter
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from activities.assignment import ASSIGNMENTS_CHANNEL, AssignmentActivities
from activities.read_model import ReadModelActivities
from goalkeeper.models import GoalSpec, Id, TaskView
from goalkeeper.records import (
    AssignAgents,
    Assignment,
    AssignTask,
    EndAssignment,
    Event,
    EventKind,
    RecordGoal,
    RecordTasks,
)
from goalkeeper.statuses import AssignmentStatus, GoalStatus, TaskStatus
from interfaces.stack import TemporalDevServer
from tests.helpers import (
    PATIENCE,
    SimulatedAgents,
    events,
    eventually,
    goal_spec,
    one_row,
    start_goal,
    start_worker_process,
)

env = ActivityEnvironment()


async def _goal(pool: asyncpg.Pool, workspace: str, n_tasks: int, skill: str = "data") -> str:
    goal_id = f"goal-{uuid.uuid4().hex[:8]}"
    spec = GoalSpec.model_validate(
        {
            "goal_id": goal_id,
            "title": "Assignment test",
            "workspace": workspace,
            "tasks": [{"id": f"t{i}", "title": f"T{i}", "skill": skill} for i in range(n_tasks)],
        }
    )
    record = RecordGoal(
        goal_id=goal_id,
        goal_run_id="run",
        header=spec.header(),
        tasks_total=n_tasks,
        event=Event(event_id=str(uuid.uuid4()), kind=EventKind.GOAL_STARTED, message="test"),
    )
    read_model = ReadModelActivities(pool)
    await env.run(read_model.record_goal, record)
    stored = RecordTasks(goal_id=goal_id, goal_run_id="run", first_position=0, tasks=spec.tasks)
    await env.run(read_model.record_tasks, stored)
    return goal_id


def _request(
    goal_id: str, task_id: str, workspace: str, skill: str = "data", **fields: object
) -> AssignAgents:
    task = AssignTask.model_validate(
        {
            "task_id": task_id,
            "skill": skill,
            "assignment_id": str(uuid.uuid4()),
            "attempt": 1,
            "seq": 1,
            "report_deadline_seconds": 60,
            "heartbeat_timeout_seconds": 60,
            **fields,
        }
    )
    return AssignAgents(goal_id=goal_id, goal_run_id="run", workspace=workspace, tasks=[task])


async def _assign(pool: asyncpg.Pool, request: AssignAgents) -> Assignment:
    [assignment] = await env.run(AssignmentActivities(pool).assign_agents, request)
    return assignment


async def _register(
    pool: asyncpg.Pool,
    workspace: str,
    agent_id: str,
    *,
    skills: tuple[str, ...] = ("data",),
    capacity: int = 1,
    load: int = 0,
    status: str = "available",
) -> None:
    await pool.execute(
        "INSERT INTO agents (agent_id, workspace, skills, capacity, active_assignments, status) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        agent_id,
        workspace,
        list(skills),
        capacity,
        load,
        status,
    )


async def test_least_loaded_agent_with_the_skill_and_a_working_status_wins(
    pool: asyncpg.Pool, workspace: str
) -> None:
    goal_id = await _goal(pool, workspace, 1)
    await _register(pool, workspace, f"{workspace}-busy", capacity=4, load=3, status="busy")
    await _register(pool, workspace, f"{workspace}-idle", capacity=4, load=1, status="busy")
    await _register(pool, workspace, f"{workspace}-writer", skills=("writing",))
    await _register(pool, workspace, f"{workspace}-gone", status="unresponsive")
    await _register(pool, workspace, f"{workspace}-off", status="offline")
    assignment = await _assign(pool, _request(goal_id, "t0", workspace))
    assert assignment.agent_id == f"{workspace}-idle" and not assignment.provisioned
    task = await one_row(pool, "SELECT * FROM tasks WHERE goal_id = $1", goal_id)
    assert (task["status"], task["agent_id"]) == ("assigned", f"{workspace}-idle")
    assert str(task["assignment_id"]) == assignment.assignment_id


async def test_with_no_agent_one_is_provisioned_and_recorded(
    pool: asyncpg.Pool, workspace: str
) -> None:
    goal_id = await _goal(pool, workspace, 1)
    assignment = await _assign(pool, _request(goal_id, "t0", workspace))
    assert assignment.provisioned and assignment.agent_id.startswith("auto-data-")
    agent = await one_row(pool, "SELECT * FROM agents WHERE agent_id = $1", assignment.agent_id)
    assert (agent["provisioned"], agent["status"], agent["active_assignments"]) == (True, "busy", 1)
    [provisioned] = await events(pool, goal_id, "agent_provisioned")
    assert workspace in provisioned["message"] and "'data'" in provisioned["message"]


async def test_a_retried_assignment_writes_nothing_twice(
    pool: asyncpg.Pool, workspace: str
) -> None:
    goal_id = await _goal(pool, workspace, 1)
    await _register(pool, workspace, f"{workspace}-a", capacity=3)
    request = _request(goal_id, "t0", workspace)
    activities = AssignmentActivities(pool)
    first = await _assign(pool, request)
    again = await _assign(pool, request)
    assert again.agent_id == first.agent_id
    load = await pool.fetchval(
        "SELECT active_assignments FROM agents WHERE agent_id = $1", first.agent_id
    )
    assert load == 1
    assert len(await events(pool, goal_id, "task_assigned")) == 1

    end = EndAssignment(
        assignment_id=first.assignment_id,
        status=AssignmentStatus.COMPLETED,
        task=TaskView(
            goal_id=goal_id,
            goal_run_id="run",
            task_id="t0",
            title="t0",
            skill="data",
            status=TaskStatus.COMPLETED,
            agent_id=first.agent_id,
            assignment_id=first.assignment_id,
            attempts=1,
            seq=2,
        ),
        event=Event(event_id=str(uuid.uuid4()), kind=EventKind.TASK_COMPLETED, message="done"),
    )
    await env.run(activities.end_assignment, end)
    await env.run(activities.end_assignment, end)
    agent = await one_row(pool, "SELECT * FROM agents WHERE agent_id = $1", first.agent_id)
    assert (agent["active_assignments"], agent["status"]) == (0, "available")


async def test_concurrent_assignments_never_race_for_one_slot(
    pool: asyncpg.Pool, workspace: str
) -> None:
    goal_id = await _goal(pool, workspace, 12)
    for n in range(3):
        await _register(pool, workspace, f"{workspace}-agent{n}", capacity=2)
    assignments = await asyncio.gather(
        *(_assign(pool, _request(goal_id, f"t{i}", workspace)) for i in range(12))
    )
    registered = [a for a in assignments if not a.provisioned]
    assert len(registered) == 6  # three agents, two slots each, none over capacity
    rows = await pool.fetch(
        "SELECT agent_id, active_assignments, capacity FROM agents WHERE workspace = $1", workspace
    )
    assert all(r["active_assignments"] <= r["capacity"] for r in rows)
    assert sum(r["active_assignments"] for r in rows) == 12
    assert len({a.assignment_id for a in assignments}) == 12


async def test_the_agent_is_woken_by_notify(pool: asyncpg.Pool, workspace: str) -> None:
    goal_id = await _goal(pool, workspace, 1)
    woken: asyncio.Queue[str] = asyncio.Queue()
    async with pool.acquire() as connection:
        listener = lambda *args: woken.put_nowait(args[3])  # noqa: E731
        await connection.add_listener(ASSIGNMENTS_CHANNEL, listener)
        assignment = await _assign(pool, _request(goal_id, "t0", workspace))
        assert await asyncio.wait_for(woken.get(), PATIENCE) == assignment.agent_id
        await connection.remove_listener(ASSIGNMENTS_CHANNEL, listener)


async def test_the_schema_refuses_a_task_past_pending_without_an_agent(
    pool: asyncpg.Pool, workspace: str
) -> None:
    goal_id = await _goal(pool, workspace, 1)
    with pytest.raises(asyncpg.CheckViolationError, match="task_past_pending_has_agent"):
        await pool.execute("UPDATE tasks SET status = 'assigned' WHERE goal_id = $1", goal_id)


async def test_with_no_agents_registered_every_task_gets_one(
    client: Client, task_queue: str, workspace: str, pool: asyncpg.Pool
) -> None:
    handle = await start_goal(client, goal_spec(4, workspace), task_queue)
    async with SimulatedAgents(client, pool, handle.id):
        report = await handle.result()
    assert report.status is GoalStatus.COMPLETED
    assert all(t.agent_id and t.agent_id.startswith("auto-writing-") for t in report.tasks)
    used = {t.agent_id for t in report.tasks}
    provisioned = {r["agent_id"] for r in await events(pool, handle.id, "agent_provisioned")}
    assert used <= provisioned  # an agent freed by one task may be reused by the next
    orphans = await pool.fetchval(
        "SELECT count(*) FROM tasks WHERE goal_id = $1 AND status <> 'pending' "
        "AND agent_id IS NULL",
        handle.id,
    )
    assert orphans == 0


async def test_an_agent_provisioned_for_any_skill_has_a_valid_id(
    pool: asyncpg.Pool, workspace: str
) -> None:
    goal_id = await _goal(pool, workspace, 1, skill="C++ / Qt")
    assignment = await _assign(pool, _request(goal_id, "t0", workspace, skill="C++ / Qt"))
    assert assignment.provisioned and assignment.agent_id.startswith("auto-C-Qt-")
    TypeAdapter(Id).validate_python(assignment.agent_id)  # reports from it will be accepted
    skills = await pool.fetchval(
        "SELECT skills FROM agents WHERE agent_id = $1", assignment.agent_id
    )
    assert skills == ["C++ / Qt"]


async def test_the_agent_choice_uses_the_skills_index(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute("SET LOCAL enable_seqscan = off")
        rows = await connection.fetch(
            "EXPLAIN SELECT agent_id FROM agents WHERE workspace = 'w' "
            "AND skills @> ARRAY['data'] AND status IN ('available', 'busy') "
            "AND active_assignments < capacity"
        )
    plan = "\n".join(r[0] for r in rows)
    assert "agents_pool" in plan, plan


async def test_assignments_for_another_skill_never_wait(pool: asyncpg.Pool, workspace: str) -> None:
    goal_id = await _goal(pool, workspace, 2)
    await _register(pool, workspace, f"{workspace}-both", skills=("data", "writing"), capacity=4)
    async with pool.acquire() as holder, holder.transaction():
        # Another assignment for skill `data` holds its turn, mid-transaction.
        await holder.execute(
            "SELECT pg_advisory_xact_lock(hashtext('goalkeeper-assign:' || $1 || '/data'))",
            workspace,
        )
        writing = await asyncio.wait_for(
            _assign(pool, _request(goal_id, "t0", workspace, skill="writing")), PATIENCE
        )
        assert writing.agent_id == f"{workspace}-both"
        data = asyncio.ensure_future(_assign(pool, _request(goal_id, "t1", workspace)))

        async def waiting() -> bool:  # on the turn the holder has, and on nothing else
            return bool(
                await pool.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                    "AND pid <> pg_backend_pid()"
                    " AND objid::bigint = (hashtext('goalkeeper-assign:' || $1 || '/data')::bigint"
                    " & x'ffffffff'::bigint)",
                    workspace,
                )
            )

        await eventually(waiting, what="the assignment for skill data to wait for its turn")
        assert not data.done()  # its own skill's turn is taken: it waits, and only it
    assert (await asyncio.wait_for(data, PATIENCE)).agent_id == f"{workspace}-both"


async def test_workers_in_several_processes_never_give_a_slot_twice(
    client: Client,
    pool: asyncpg.Pool,
    temporal_server: TemporalDevServer,
    database_url: str,
    workspace: str,
    tmp_path: Path,
) -> None:
    queue = f"many-{uuid.uuid4().hex[:8]}"
    workers = [
        await start_worker_process(temporal_server, database_url, queue, tmp_path / f"w{n}.log")
        for n in range(3)
    ]
    try:
        for n in range(3):
            await _register(pool, workspace, f"{workspace}-agent{n}", capacity=2)
        handles = [
            await start_goal(client, goal_spec(8, workspace, max_running_tasks=8), queue)
            for _ in range(3)
        ]
        agents = [SimulatedAgents(client, pool, h.id, delay=0.02) for h in handles]
        for simulated in agents:
            await simulated.__aenter__()
        try:
            for handle in handles:
                assert (await handle.result()).status is GoalStatus.COMPLETED
        finally:
            for simulated in agents:
                await simulated.__aexit__(None, None, None)
    finally:
        for worker in workers:
            worker.terminate()
            worker.wait()
    rows = await pool.fetch(
        "SELECT agent_id, active_assignments, capacity FROM agents WHERE workspace = $1", workspace
    )
    assert all(r["active_assignments"] == 0 for r in rows)  # every slot given back once
    per_agent = await pool.fetch(
        """
        SELECT a.agent_id, max(overlap) AS most FROM (
            SELECT x.agent_id, (SELECT count(*) FROM assignments y
                                WHERE y.agent_id = x.agent_id AND y.created_at <= x.created_at
                                  AND coalesce(y.ended_at, now()) > x.created_at) AS overlap
            FROM assignments x JOIN agents g USING (agent_id) WHERE g.workspace = $1) a
        GROUP BY a.agent_id
        """,
        workspace,
    )
    capacity = {r["agent_id"]: r["capacity"] for r in rows}
    assert all(r["most"] <= capacity[r["agent_id"]] for r in per_agent), per_agent
