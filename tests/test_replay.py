"""Replay of stored histories: a change that breaks determinism fails here, not in production.

To refresh the stored histories after a deliberate, versioned change:
    GOALKEEPER_RECORD_HISTORIES=1 .venv/bin/pytest tests/test_replay.py
"""

import os
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from goalkeeper.statuses import GoalStatus, RequestStatus
from interfaces.agents.runner import Work, WorkResult
from tests.helpers import SimulatedAgents, running_agents, start_goal
from workflows.goal import GoalWorkflow
from workflows.request import RequestWorkflow
from workflows.runners.partition import PartitionWorkflow
from workflows.task import TaskWorkflow

HISTORIES = Path(__file__).parent / "histories"
GOAL_ID = "replay-sample"
PARTITIONED_ID = "replay-partitioned"
REQUEST_ID = "replay-request"
SUBGOAL_PARENT_ID = "replay-with-subgoal"
WORKFLOW_IDS = {
    "goal": GOAL_ID,
    "task_with_approval": f"{GOAL_ID}/email",
    "task_retried": f"{GOAL_ID}/flaky",
    "goal_partitioned": PARTITIONED_ID,
    "partition": f"{PARTITIONED_ID}#partition-1",
    "request": REQUEST_ID,
    "task_triage": f"{REQUEST_ID}.triage/triage",
    "goal_with_subgoal": SUBGOAL_PARENT_ID,
    "subgoal": f"{SUBGOAL_PARENT_ID}/research",
}
REPLAYER = Replayer(
    workflows=[RequestWorkflow, GoalWorkflow, PartitionWorkflow, TaskWorkflow],
    data_converter=pydantic_data_converter,
)


async def _run_sample_goal(client: Client, pool: asyncpg.Pool, queue: str, workspace: str) -> None:
    """A goal that touches every path: approval, rework, a failed attempt, skipped dependents."""
    spec = {
        "title": "Replay sample",
        "description": "Everything a goal can go through",
        "workspace": workspace,
        "approvers": ["ops-lead"],
        "max_attempts": 2,
        "tasks": [
            {"id": "csv", "title": "Import CSV", "skill": "data"},
            {
                "id": "email",
                "title": "Email",
                "skill": "writing",
                "depends_on": ["csv"],
                "requires_approval": True,
            },
            {"id": "flaky", "title": "Flaky", "skill": "data"},
            {"id": "doomed", "title": "Doomed", "skill": "ops"},
            {"id": "after", "title": "After doomed", "skill": "ops", "depends_on": ["doomed"]},
        ],
    }
    handle = await start_goal(client, spec, queue, goal_id=GOAL_ID)

    def outcome(task_id: str, attempt: int) -> str:
        return (
            "failed"
            if task_id == "doomed" or (task_id == "flaky" and attempt == 1)
            else "completed"
        )

    async with SimulatedAgents(client, pool, handle.id, outcome=outcome, approver="ops-lead"):
        report = await handle.result()
    assert report.status is GoalStatus.FAILED and report.progress.tasks_completed == 3

    partitioned = {
        "title": "Replay sample in partitions",
        "workspace": workspace,
        "partition_size": 2,
        "tasks": [
            {"id": f"p{i}", "title": f"P{i}", "skill": "data", "depends_on": [f"p{i - 2}"]}
            if i >= 2
            else {"id": f"p{i}", "title": f"P{i}", "skill": "data"}
            for i in range(5)
        ],
    }
    handle = await start_goal(client, partitioned, queue, goal_id=PARTITIONED_ID)
    async with SimulatedAgents(client, pool, handle.id):
        report = await handle.result()
    assert report.status is GoalStatus.COMPLETED and report.progress.tasks_completed == 5

    with_subgoal = {
        "title": "Replay sample with a sub-goal",
        "workspace": workspace,
        "tasks": [
            {
                "id": "research",
                "title": "Research",
                "goal": {
                    "title": "Research",
                    "tasks": [{"id": f"s{i}", "title": f"S{i}", "skill": "data"} for i in range(2)],
                },
            },
            {"id": "sum", "title": "Sum up", "skill": "data", "depends_on": ["research"]},
        ],
    }
    handle = await start_goal(client, with_subgoal, queue, goal_id=SUBGOAL_PARENT_ID)
    async with (
        SimulatedAgents(client, pool, handle.id),
        SimulatedAgents(client, pool, f"{handle.id}/research", delay=0.5),
    ):
        report = await handle.result()
    assert report.status is GoalStatus.COMPLETED and report.progress.tasks_completed == 2

    async with running_agents(client, pool, workspace, _triage_then_work, ("triage", "data")):
        request = await client.execute_workflow(
            RequestWorkflow.run,
            {"question": "Import the leads, then count them", "workspace": workspace},
            id=REQUEST_ID,
            task_queue=queue,
        )
    assert request.status is RequestStatus.COMPLETED


async def _triage_then_work(work: Work) -> WorkResult:
    """A triage that is sent back once, then proposes a goal; other work just completes."""
    if work.task.get("expects") != "triage":
        return WorkResult(f"{work.task_id} done")
    if work.attempt == 1:
        return WorkResult({"kind": "goal", "goal": {"title": "No tasks"}})
    goal: dict[str, Any] = {
        "title": "Leads",
        "tasks": [{"id": "import", "title": "Import", "skill": "data"}],
    }
    return WorkResult({"kind": "goal", "goal": goal})


async def test_a_fresh_history_of_every_path_replays(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    await _run_sample_goal(client, pool, task_queue, workspace)
    histories = {
        name: await client.get_workflow_handle(workflow_id).fetch_history()
        for name, workflow_id in WORKFLOW_IDS.items()
    }
    for history in histories.values():
        await REPLAYER.replay_workflow(history)
    if os.environ.get("GOALKEEPER_RECORD_HISTORIES"):
        HISTORIES.mkdir(exist_ok=True)
        for name, history in histories.items():
            (HISTORIES / f"{name}.json").write_text(history.to_json())


def _stored() -> list[Path]:
    return sorted(HISTORIES.glob("*.json"))


def test_histories_are_stored() -> None:
    assert {p.stem for p in _stored()} == set(WORKFLOW_IDS)


@pytest.mark.parametrize("path", _stored(), ids=lambda p: p.stem)
async def test_stored_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(WORKFLOW_IDS[path.stem], path.read_text())
    await REPLAYER.replay_workflow(history)
