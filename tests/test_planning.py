"""Planning and growing goals: a planner's tasks checked like a spec, and `add_tasks`."""

import asyncio
import re
import uuid

import asyncpg
import pytest
from temporalio.client import Client, WorkflowUpdateFailedError

from goalkeeper.errors import InvalidGoalSpec
from goalkeeper.models import GoalSpec
from goalkeeper.planning import check_new_tasks, parse_plan
from goalkeeper.runbooks import parse_runbook
from goalkeeper.scheduling import Plan, Schedule
from goalkeeper.statuses import GoalStatus, TaskStatus
from interfaces.agents.runner import SimulatedWork, Work, WorkResult
from store.runbooks import add_runbook
from tests.helpers import (
    PATIENCE,
    SimulatedAgents,
    events,
    goal_spec,
    new_goal_id,
    running_agents,
    start_goal,
    wait_task,
)
from tests.test_runbooks import runbook_toml
from workflows.goal import GoalWorkflow

SKILLS = ("planning", "research", "writing")
HEADER = GoalSpec(title="g", goal_id="g", approvers=["ops"])


def test_added_tasks_are_checked_like_a_spec() -> None:
    tasks = check_new_tasks(
        HEADER, [{"id": "b", "title": "B", "skill": "s", "depends_on": ["a"]}], {"a"}, 10
    )
    assert [t.id for t in tasks] == ["b"]
    cases = [
        ([{"id": "a", "title": "A", "skill": "s"}], "'a' is already a task of the goal"),
        ([{"title": "A", "skill": "s"}], "tasks[0].id: required for added tasks"),
        ([{"id": "b", "title": "B", "skill": "s", "depends_on": ["z"]}], "'z' is not another"),
        (
            [
                {"id": "b", "title": "B", "skill": "s", "depends_on": ["c"]},
                {"id": "c", "title": "C", "skill": "s", "depends_on": ["b"]},
            ],
            "dependency cycle b -> c -> b",
        ),
        ([{"id": f"n{i}", "title": "N", "skill": "s"} for i in range(10)], "expected at most 10"),
        ([{"id": "b", "title": "B"}], "tasks[0].skill: Field required"),
    ]
    for raw, expected in cases:
        with pytest.raises(InvalidGoalSpec, match=re.escape(expected)):
            check_new_tasks(HEADER, raw, {"a"}, 10)  # type: ignore[arg-type]
    assert (
        parse_plan({"tasks": []})
        == 'invalid plan: expected either "tasks" or "runbook", got neither'
    )
    assert "Extra inputs are not permitted" in str(parse_plan({"task": []}))


def test_added_tasks_run_when_ready_and_skip_when_their_dependency_is_lost() -> None:
    schedule = Schedule(Plan.build([("a", []), ("b", [])]))
    assert schedule.next_to_start(5) == [0, 1]
    schedule.end(0, TaskStatus.FAILED)
    cascade = schedule.add([("c", ["a"]), ("d", ["b"]), ("e", ["c"]), ("f", [])])
    assert [schedule.plan.ids[i] for i, _ in cascade.skipped] == ["c", "e"]
    assert schedule.next_to_start(5) == [5]  # d waits for b; f is ready
    schedule.end(1, TaskStatus.COMPLETED)
    assert schedule.next_to_start(5) == [3]
    assert schedule.running == {3, 5} and len(schedule.plan) == 6


async def test_a_goal_with_only_a_description_is_planned_then_done(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    # Words no runbook holds (the shipped ones, which other tests store, fit a "study").
    spec = {
        "title": "Snickersnee galumph",
        "description": f"Galumph the {uuid.uuid4().hex} vorpal snickersnee quux",
        "workspace": workspace,
    }
    handle = await start_goal(client, spec, task_queue)
    async with running_agents(client, pool, workspace, SimulatedWork(delay=(0, 0)), SKILLS):
        report = await asyncio.wait_for(handle.result(), PATIENCE)
    sent_back = [e["message"] for e in await events(pool, handle.id, "result_invalid")]
    assert report.status is GoalStatus.COMPLETED, sent_back
    assert [t.task_id for t in report.tasks] == ["plan", "research", "draft", "check"]
    progress = report.progress
    assert (progress.tasks_total, progress.tasks_added) == (4, 3)
    assert "the total grew by 3 tasks added" in progress.calculation_method
    added = await events(pool, handle.id, "tasks_added")
    assert (
        "3 tasks added" in added[0]["message"] and "planned in task 'plan'" in (added[0]["message"])
    )


async def test_a_goal_is_planned_from_the_runbook_that_matches_it(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    word = f"p{uuid.uuid4().hex[:8]}"
    text = runbook_toml(f"{word}-rb", word).replace('id = "plan"', 'id = "prepare"')
    runbook = parse_runbook(text.replace('["plan"]', '["prepare"]'), "r.toml")
    await add_runbook(pool, runbook)
    spec = {
        "title": f"The {word} work",
        # Only this runbook holds the word: others made by tests share the rest.
        "description": f"Do the {word} work, please",
        "workspace": workspace,
    }
    handle = await start_goal(client, spec, task_queue)
    skills = (*SKILLS, f"planning-{word}")
    async with running_agents(client, pool, workspace, SimulatedWork(delay=(0, 0)), skills):
        report = await asyncio.wait_for(handle.result(), PATIENCE)
    assert report.status is GoalStatus.COMPLETED
    assert [t.task_id for t in report.tasks] == ["plan", "prepare", "announce"]
    goal = await pool.fetchval(
        "SELECT spec FROM tasks WHERE goal_id = $1 AND task_id = 'prepare'", handle.id
    )
    assert goal["guidance"] == "Name a date." and "owner" not in goal["title"]


class BadPlanner:
    """Proposes a plan whose task depends on one that does not exist, every time."""

    def __init__(self) -> None:
        self.seen: list[Work] = []

    async def __call__(self, work: Work) -> WorkResult:
        self.seen.append(work)
        return WorkResult({"tasks": [{"id": "x", "title": "X", "skill": "s", "depends_on": ["y"]}]})


async def test_an_invalid_plan_is_asked_again_then_fails_the_goal_visibly(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    spec = {"title": "t", "description": "plan me", "workspace": workspace, "max_attempts": 2}
    handle = await start_goal(client, spec, task_queue)
    planner = BadPlanner()
    async with running_agents(client, pool, workspace, planner, SKILLS):
        report = await asyncio.wait_for(handle.result(), PATIENCE)
    assert report.status is GoalStatus.FAILED
    assert len(planner.seen) == 2
    assert "'y' is not another task of the goal" in planner.seen[1].context["rework"][0]["comment"]
    assert report.tasks[0].error and "'y' is not another task of the goal" in report.tasks[0].error
    assert len(await events(pool, handle.id, "result_invalid")) == 1


async def test_tasks_added_to_a_running_goal_count_and_run(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    goal_id = new_goal_id()
    handle = await start_goal(client, goal_spec(1, workspace), task_queue, goal_id)
    await wait_task(client, goal_id, "t1", TaskStatus.ASSIGNED)
    progress = await handle.execute_update(
        GoalWorkflow.add_tasks,
        {
            "tasks": [
                {"id": "t2", "title": "Follow-up", "skill": "writing", "depends_on": ["t1"]},
                {"id": "t3", "title": "Side task", "skill": "writing"},
            ],
            "added_by": "agent-7",
            "reason": "found more work",
        },
    )
    assert (progress.tasks_total, progress.tasks_added) == (3, 2)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(
            GoalWorkflow.add_tasks,
            {
                "tasks": [{"id": "t3", "title": "Again", "skill": "w"}],
                "added_by": "a",
                "reason": "r",
            },
        )
    assert "'t3' is already a task of the goal" in str(refused.value.cause)
    async with SimulatedAgents(client, pool, goal_id):
        report = await handle.result()
    assert report.status is GoalStatus.COMPLETED and report.progress.tasks_total == 3
    assert (await events(pool, goal_id, "tasks_added"))[0]["message"].endswith("it now has 3")


async def test_agents_of_a_planned_goal_get_the_plan_with_their_assignment(
    client: Client, pool: asyncpg.Pool, task_queue: str, workspace: str
) -> None:
    spec = {"title": "t", "description": f"Quux the {uuid.uuid4().hex}", "workspace": workspace}
    handle = await start_goal(client, spec, task_queue)
    async with running_agents(client, pool, workspace, SimulatedWork(delay=(0, 0)), SKILLS):
        await asyncio.wait_for(handle.result(), PATIENCE)
    context = await pool.fetchval(
        "SELECT context FROM assignments WHERE goal_id = $1 AND task_id = 'draft'", handle.id
    )
    assert [t["id"] for t in context["goal"]["plan"]["tasks"]] == ["research", "draft", "check"]
    assert context["goal"]["description"] == spec["description"]
    assert set(context["dependency_results"]) == {"research"}
