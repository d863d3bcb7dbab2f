"""The agent runner: woken by NOTIFY, reporting by signal, with pluggable work."""

import asyncio
import sys
from pathlib import Path

import asyncpg
from temporalio.client import Client

from goalkeeper.statuses import GoalStatus, TaskStatus
from interfaces.agents.runner import (
    CommandHook,
    SimulatedFailure,
    SimulatedWork,
    Work,
    WorkResult,
)
from tests.helpers import PATIENCE, goal_spec, running_agents, start_goal


async def test_registered_agents_are_woken_and_complete_a_goal(
    client: Client, task_queue: str, workspace: str, pool: asyncpg.Pool
) -> None:
    hook = SimulatedWork(delay=(0.0, 0.05), tokens=(100, 100), cost_per_1k_tokens=0.01)
    async with running_agents(client, pool, workspace, hook) as runner:
        handle = await start_goal(client, goal_spec(4, workspace), task_queue)
        report = await asyncio.wait_for(handle.result(), PATIENCE)
    assert report.status is GoalStatus.COMPLETED
    assert {t.agent_id for t in report.tasks} <= {f"{workspace}-agent-0", f"{workspace}-agent-1"}
    assert report.progress.tokens_used == 400 and report.progress.cost_usd == 0.004
    assert runner.reports == 4
    provisioned = await pool.fetchval(
        "SELECT count(*) FROM agents WHERE workspace = $1 AND provisioned", workspace
    )
    assert provisioned == 0


async def test_a_seeded_simulation_fails_the_same_attempts_every_time() -> None:
    hook = SimulatedWork(success_rate=0.5, delay=(0, 0), seed="s")

    async def outcomes(agent_id: str, goal_id: str) -> list[bool]:
        seen = []
        for attempt in range(1, 9):
            try:
                await hook(Work("a", agent_id, goal_id, "t1", attempt, {"task": {"title": "T"}}))
                seen.append(True)
            except SimulatedFailure:
                seen.append(False)
        return seen

    first = await outcomes("agent", "any-goal")
    assert first == await outcomes("other", "another-goal")
    assert True in first and False in first


async def summarize(work: Work) -> WorkResult:
    """A function hook, as a real agent would plug in."""
    return WorkResult(
        result=f"{work.goal['description']} / {work.task['title']}", tokens_used=7, cost_usd=0.5
    )


async def test_a_function_hook_sees_the_goal_and_the_task(
    client: Client, task_queue: str, workspace: str, pool: asyncpg.Pool
) -> None:
    async with running_agents(client, pool, workspace, summarize):
        handle = await start_goal(client, goal_spec(1, workspace), task_queue)
        report = await asyncio.wait_for(handle.result(), PATIENCE)
    result = await pool.fetchval(
        "SELECT result FROM tasks WHERE goal_id = $1 AND task_id = 't1'", handle.id
    )
    assert result == "A goal made by a test / Task 1"
    assert report.progress.cost_usd == 0.5


async def test_a_command_hook_gets_the_work_on_stdin_and_fails_on_exit_code(
    client: Client, task_queue: str, workspace: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    script = tmp_path / "agent.py"
    script.write_text(
        "import json, sys\n"
        "work = json.load(sys.stdin)\n"
        "if work['task_id'] == 't2':\n"
        "    sys.exit('cannot do ' + work['context']['task']['title'])\n"
        "print('did ' + work['context']['task']['title'])\n"
    )
    hook = CommandHook(f"{sys.executable} {script}")
    async with running_agents(client, pool, workspace, hook):
        handle = await start_goal(client, goal_spec(2, workspace, max_attempts=2), task_queue)
        report = await asyncio.wait_for(handle.result(), PATIENCE)
    outcomes = {t.task_id: (t.outcome, t.error) for t in report.tasks}
    assert outcomes["t1"] == (TaskStatus.COMPLETED, None)
    assert outcomes["t2"][0] is TaskStatus.FAILED
    error = outcomes["t2"][1]
    assert error is not None and "cannot do Task 2" in error and "attempt 2" in error
