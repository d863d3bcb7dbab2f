"""A goal that cannot run fails at once, with an error that names the problem."""

from typing import Any

import asyncpg
import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from goalkeeper.errors import InvalidGoalSpec
from goalkeeper.validation import validate_goal_spec
from tests.helpers import events, goal_spec, one_row, start_goal

TASK = {"title": "Write", "skill": "writing"}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"title": "Empty", "tasks": []},
            "expected at least one task, a runbook, or a description to plan from",
        ),
        (
            {"title": "No list"},
            "tasks: expected at least one task, a runbook, or a description to plan from",
        ),
        (
            {"title": "Dup", "tasks": [{**TASK, "id": "a"}, {**TASK, "id": "a"}]},
            "tasks[1].id: duplicate task id 'a' (also tasks[0])",
        ),
        ({"title": "No skill", "tasks": [{"title": "x"}]}, "tasks[0].skill: Field required"),
        (
            {"title": "Blank title", "tasks": [{"title": "  ", "skill": "s"}]},
            "tasks[0].title: String should have at least 1 character",
        ),
        (
            {"title": "Typo", "tasks": [{**TASK, "skil": "x"}]},
            "tasks[0].skil: Extra inputs are not permitted, got 'x'",
        ),
        (
            {"title": "Extra", "tasks": [TASK], "owner": "bob"},
            "owner: Extra inputs are not permitted",
        ),
        (
            {"title": "Bool", "tasks": [{**TASK, "requires_approval": "yes"}], "approvers": ["a"]},
            "tasks[0].requires_approval: Input should be a valid boolean, got 'yes'",
        ),
        (
            {"title": "Unknown dep", "tasks": [{**TASK, "id": "a", "depends_on": ["zz"]}]},
            "tasks[0].depends_on: unknown task 'zz'; expected one of ['a']",
        ),
        (
            {"title": "Self", "tasks": [{**TASK, "id": "a", "depends_on": ["a"]}]},
            "task 'a' depends on itself",
        ),
        (
            {
                "title": "Cycle",
                "tasks": [
                    {**TASK, "id": "a", "depends_on": ["c"]},
                    {**TASK, "id": "b", "depends_on": ["a"]},
                    {**TASK, "id": "c", "depends_on": ["b"]},
                ],
            },
            "dependency cycle a -> c -> b -> a",
        ),
        (
            {"title": "Nobody", "tasks": [{**TASK, "requires_approval": True}]},
            "needs approval but neither it nor the goal names an approver",
        ),
        ({"title": "Wrong id", "goal_id": "other", "tasks": [TASK]}, "goal_id 'other' differs"),
        ("not an object", "expected a JSON object, got str"),
        ({"title": "Bad id", "tasks": [{**TASK, "id": "a b"}]}, "tasks[0].id: String should match"),
    ],
)
def test_validation_names_the_problem(spec: Any, expected: str) -> None:
    with pytest.raises(InvalidGoalSpec) as caught:
        validate_goal_spec(spec, "g1")
    assert expected in str(caught.value)


def test_missing_task_ids_are_generated_without_clashing() -> None:
    spec = validate_goal_spec(
        {
            "title": "Ids",
            "tasks": [TASK, {**TASK, "id": "task-1"}, {**TASK, "depends_on": ["task-1"]}],
        },
        "g1",
    )
    assert [t.id for t in spec.tasks] == ["task-4", "task-1", "task-3"]
    assert spec.goal_id == "g1"


async def test_an_invalid_goal_fails_at_once_and_is_recorded(
    client: Client, task_queue: str, pool: asyncpg.Pool
) -> None:
    spec = goal_spec(2)
    spec["tasks"][1]["id"] = "t1"
    handle = await start_goal(client, spec, task_queue)
    with pytest.raises(WorkflowFailureError) as caught:
        await handle.result()
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "InvalidGoalSpec" and cause.non_retryable
    assert "duplicate task id 't1'" in cause.message

    goal = await one_row(pool, "SELECT status, error FROM goals WHERE goal_id = $1", handle.id)
    assert goal["status"] == "rejected" and "duplicate task id 't1'" in goal["error"]
    [rejection] = await events(pool, handle.id, "goal_rejected")
    assert "duplicate task id 't1'" in rejection["message"]
    assert await pool.fetchval("SELECT count(*) FROM tasks WHERE goal_id = $1", handle.id) == 0


async def test_a_goal_with_no_tasks_or_no_input_cannot_start_silently(
    client: Client, task_queue: str
) -> None:
    for spec in ({"title": "Nothing to do", "tasks": []}, None):
        handle = await start_goal(client, spec, task_queue)  # type: ignore[arg-type]
        with pytest.raises(WorkflowFailureError) as caught:
            await handle.result()
        assert isinstance(caught.value.cause, ApplicationError)
        assert "invalid goal spec" in caught.value.cause.message
