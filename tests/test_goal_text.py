"""What a goal says of itself, decided without Temporal: its UI details and stage, and
why its report says it did not succeed."""

from datetime import UTC, datetime

from goalkeeper.details import current_details, held_stage, resumed_stage, task_note
from goalkeeper.models import (
    BudgetState,
    GoalCheckpoint,
    GoalRef,
    Progress,
    TaskSummary,
    WindowState,
)
from goalkeeper.progress import compute_progress
from goalkeeper.reports import REPORT_TASKS, goal_error, reported, unfinished_tasks
from goalkeeper.scheduling import ScheduleState
from goalkeeper.statuses import GoalStatus, TaskStatus


def _progress(done: int, failed: int = 0, skipped: int = 0, stage: str = "running") -> Progress:
    counts = {
        TaskStatus.COMPLETED: done,
        TaskStatus.FAILED: failed,
        TaskStatus.SKIPPED: skipped,
        TaskStatus.PENDING: 1,
    }
    return compute_progress(
        "g", GoalStatus.RUNNING, stage, counts, agents_total=2, agents_completed=1,
        cost_usd=0.5, tokens_used=10,
    )  # fmt: skip


def test_a_running_task_is_noted_only_when_it_needs_attention() -> None:
    assert task_note(TaskSummary(task_id="a", status=TaskStatus.ASSIGNED, attempts=1), "A") == ""
    waiting = TaskSummary(
        task_id="a", status=TaskStatus.AWAITING_APPROVAL, waiting_on=["ops", "cfo"]
    )
    assert task_note(waiting, "A") == "waiting on approver ops or cfo for 'A'"
    again = TaskSummary(task_id="a", status=TaskStatus.ASSIGNED, attempts=2, agent_id="bot")
    assert task_note(again, "A") == "'A' reassigned to bot (attempt 2)"
    subgoal = TaskSummary(task_id="a", status=TaskStatus.ASSIGNED, goal_progress="1 of 3")
    assert task_note(subgoal, "A") == "A: 1 of 3"


def test_the_stage_names_the_first_thing_that_holds_the_goal() -> None:
    assert held_stage(None, None, None, [], False) is None
    assert held_stage("x", "paused: budget", "spent", ["a"], True) == "failing: x"
    assert held_stage(None, "paused: budget", "spent", ["a"], True) == "paused: budget"
    assert held_stage(None, None, "spent", ["a"], True) == (
        "paused: budget (spent); assignments start again once it is raised"
    )
    waiting = [f"t{n}" for n in range(12)]
    assert held_stage(None, None, None, waiting, True) == (
        f"awaiting a retry decision on {', '.join(waiting[:10])} and 2 more"
    )
    assert held_stage(None, None, None, [], True) == "running: continuing as new"


def test_a_next_run_shows_the_pause_its_checkpoint_carries() -> None:
    window = WindowState(schedule=ScheduleState(statuses="AA=="))
    ref = GoalRef(goal_id="g", goal_run_id="r", tasks_total=1)
    paused = BudgetState(usd=1.0, paused_at=datetime(2025, 1, 1, tzinfo=UTC))
    checkpoint = GoalCheckpoint(spec_ref=ref, window=window, budget=paused)
    assert resumed_stage(checkpoint) == "paused: budget ($0.00 of $1.00 (0%))"
    assert resumed_stage(checkpoint.model_copy(update={"budget": BudgetState()})) is None


def test_the_details_count_what_is_done_and_list_a_few_notes() -> None:
    notes = [f"note {n}" for n in range(12)]
    text = current_details(_progress(2, failed=1, stage="failing: x"), "$0.50 of $1.00", notes)
    lines = text.split("\n\n")
    assert lines[0] == "**2 of 4 tasks done** (50.0%), 2 agents, $0.5000"
    assert lines[1:4] == ["failing: x", "budget: $0.50 of $1.00", "1 failed, 0 skipped"]
    assert lines[4:] == [*notes[:10], "and 2 more"]
    assert current_details(_progress(3), None, []).count("\n") == 0


def test_the_error_names_what_did_not_complete_and_the_criteria_unmet() -> None:
    assert goal_error(_progress(3), "continue", None, "", None) == (
        "1 of 4 tasks did not complete (on_task_failure=continue): "
    )
    unfinished = unfinished_tasks([(f"t{n}", TaskStatus.FAILED) for n in range(11)])
    assert unfinished.endswith("t9 failed; and 1 more")
    error = goal_error(_progress(3), "fail_goal", "task t0 failed", unfinished, "no prices")
    assert error is not None and error.startswith(
        "no prices; 1 of 4 tasks did not complete (on_task_failure=fail_goal, task t0 failed): "
        "t0 failed; t1 failed"
    )
    done = compute_progress(
        "g", GoalStatus.RUNNING, "running", {TaskStatus.COMPLETED: 2},
        agents_total=1, agents_completed=1, cost_usd=0, tokens_used=0,
    )  # fmt: skip
    assert goal_error(done, "continue", None, "", None) is None
    assert goal_error(done, "continue", None, "", "no prices") == "no prices"


def test_a_large_report_lists_only_what_did_not_complete() -> None:
    assert list(reported([1, 2], 3)) == [0, 1, 2]
    lost = list(range(0, 2 * REPORT_TASKS, 2))
    assert reported(lost, REPORT_TASKS + 1) == lost[:REPORT_TASKS]
