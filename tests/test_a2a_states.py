"""How a request and its goal read as an A2A task: state and status message."""

from typing import Any

import pytest

from goalkeeper.a2a_states import A2aState, Standing, Waiting, standing

REQUEST = {"request_id": "r1", "goal_id": None, "answer": None, "error": None}
GOAL = {
    "status": "running",
    "stage": "running",
    "progress_percentage": 50.0,
    "tasks_completed": 1,
    "tasks_total": 2,
    "approvers": ["lead"],
}


def of(status: str, **fields: Any) -> dict[str, Any]:
    return REQUEST | {"status": status} | fields


def test_a_request_in_triage_is_working() -> None:
    assert standing(of("triaging")) == Standing(
        A2aState.WORKING, "request 'r1': triaging the question"
    )


def test_an_answered_request_is_completed_with_its_answer() -> None:
    assert standing(of("answered", answer="42")) == Standing(A2aState.COMPLETED, "42")


def test_a_request_whose_goal_completed_is_completed() -> None:
    got = standing(of("completed", goal_id="r1.goal"))
    assert got == Standing(A2aState.COMPLETED, "goal 'r1.goal' completed")


def test_a_canceled_request_is_canceled_saying_when() -> None:
    got = standing(of("canceled", error="canceled by its caller while triaged"))
    assert got == Standing(A2aState.CANCELED, "request 'r1' canceled by its caller while triaged")


@pytest.mark.parametrize("status", ["failed", "rejected"])
def test_a_failed_or_rejected_request_is_failed_with_its_reason(status: str) -> None:
    got = standing(of(status, error="triage gave no valid result"))
    assert got.state is A2aState.FAILED and got.state.is_terminal
    assert got.message == f"request 'r1' {status}: triage gave no valid result"


def test_a_goal_not_yet_recorded_is_starting() -> None:
    got = standing(of("goal_running", goal_id="r1.goal"))
    assert got == Standing(A2aState.WORKING, "goal 'r1.goal' starting")


def test_a_running_goal_is_working_with_its_progress() -> None:
    got = standing(of("goal_running", goal_id="g"), GOAL)
    assert got == Standing(A2aState.WORKING, "goal 'g': 50% (1 of 2 tasks completed); running")


def test_a_task_awaiting_approval_requires_input_of_its_approvers() -> None:
    waiting = [Waiting("announce", "Announce it", ("ann", "bob")), Waiting("b", "B", ())]
    got = standing(of("goal_running", goal_id="g"), GOAL, waiting)
    assert got.state is A2aState.INPUT_REQUIRED and not got.state.is_terminal
    assert got.message.startswith("goal 'g': 50% (1 of 2 tasks completed); ")
    assert "task 'announce' (Announce it) awaits approval by ann, bob" in got.message
    assert "task 'b' (B) awaits approval by lead" in got.message  # the goal's approvers
    assert "POST /api/v1/goals/g/tasks/TASK/decision" in got.message


def test_a_goal_paused_at_its_budget_requires_input_to_raise_it_or_stop() -> None:
    paused = GOAL | {"stage": "paused: budget ($1.00 of $1.00 spent)"}
    got = standing(of("goal_running", goal_id="g"), paused, [Waiting("t", "T", ())])
    assert got.state is A2aState.INPUT_REQUIRED
    assert "paused: budget ($1.00 of $1.00 spent). Asked of lead" in got.message
    assert "POST /api/v1/goals/g/budget" in got.message and "/goals/g/stop" in got.message


@pytest.mark.parametrize("status", ["completed", "failed"])
def test_a_goal_just_ended_works_until_its_request_records_the_end(status: str) -> None:
    got = standing(of("goal_running", goal_id="g"), GOAL | {"status": status})
    assert got == Standing(A2aState.WORKING, f"goal 'g' {status}; finishing")


def test_a_goal_held_by_its_workspace_budget_asks_an_operator() -> None:
    stage = (
        "paused: budget (workspace 'w' has spent its monthly budget); assignments start "
        "again once it is raised"
    )
    got = standing(of("goal_running", goal_id="g"), GOAL | {"stage": stage})
    assert got.state is A2aState.INPUT_REQUIRED
    assert got.message.endswith(
        f"{stage}. Asked of an operator: raise that budget (starter.py budget set)"
    )


def test_a_working_goal_ends_with_its_newest_note_bounded_and_a_waiting_one_does_not() -> None:
    note = {"agent_id": "a1", "task_id": "t2", "message": "searching 3 sources"}
    got = standing(of("goal_running", goal_id="r1.goal"), GOAL, note=note)
    assert got == Standing(
        A2aState.WORKING,
        "goal 'r1.goal': 50% (1 of 2 tasks completed); running; "
        "agent 'a1' on task 't2': searching 3 sources",
    )
    long = standing(
        of("goal_running", goal_id="r1.goal"), GOAL, note=note | {"message": "x" * 5000}
    )
    assert len(long.message) < 500
    waiting = [Waiting("t1", "Sign", ("lead",))]
    asked = standing(of("goal_running", goal_id="r1.goal"), GOAL, waiting, note)
    assert asked.state is A2aState.INPUT_REQUIRED and "searching" not in asked.message
