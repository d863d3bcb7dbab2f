"""Sub-goals: a task that is a goal of its own, run as a child goal and counted as one task.

What a sub-goal inherits from the goal it runs for, and what its end means to that goal,
are decided here; the workflows only start it and pass its report on.
"""

from typing import Any

from goalkeeper.limits import MAX_SHORT_REASON_CHARS
from goalkeeper.models import GoalReport, GoalSpec, ParentGoal, Progress, TaskSpec, TaskSummary
from goalkeeper.requirements import held_to, requirements_of
from goalkeeper.statuses import GoalStatus, TaskStatus

INHERITED = (
    "workspace",
    "approvers",
    "escalation",
    "approval_timeout_seconds",
    "on_approval_timeout",
    "on_task_failure",
    "max_attempts",
    "report_deadline_seconds",
    "heartbeat_timeout_seconds",
    "require_signatures",
)
"""What a sub-goal takes from its parent unless its own spec says otherwise: its work
answers to the same approvers and runs under the same policies. Its workspace and
signatures it may not change (goalkeeper.requirements)."""


def subgoal_id(goal_id: str, task_id: str) -> str:
    """A sub-goal's goal id, which is also its workflow id: where its task's would be."""
    return f"{goal_id}/{task_id}"


def subgoal_spec(header: GoalSpec, task: TaskSpec, goal_run_id: str) -> dict[str, Any]:
    """The spec a task's sub-goal starts with: its own, over what it inherits, held to
    its parent's workspace and signatures whatever it says."""
    assert task.goal is not None and task.id is not None
    inherited = header.model_dump(mode="json", include=set(INHERITED))
    spec: dict[str, Any] = {
        **inherited,
        "title": task.title,
        "description": task.description,
        **task.goal,
    }
    spec.pop("goal_id", None)
    spec["parent"] = ParentGoal(
        goal_id=header.goal_id or "",
        goal_run_id=goal_run_id,
        task_id=task.id,
        depth=header.depth + 1,
    ).model_dump()
    return held_to(requirements_of(header), spec)


def progress_line(progress: Progress) -> str:
    """How far a sub-goal is, as its parent shows it beside the task."""
    line = f"{progress.tasks_completed} of {progress.tasks_total} tasks done"
    if progress.tasks_awaiting_approval:
        line += f", {progress.tasks_awaiting_approval} awaiting approval"
    if progress.tasks_failed:
        line += f", {progress.tasks_failed} failed"
    return line


def subgoal_running(start: TaskSummary, told: TaskSummary) -> TaskSummary:
    """The task while its sub-goal runs: what the sub-goal `told` its parent, on top of
    what the task had spent when this run of its sub-goal started."""
    return start.model_copy(
        update={
            "tokens_used": start.tokens_used + told.tokens_used,
            "cost_usd": round(start.cost_usd + told.cost_usd, 6),
            "goal_progress": told.goal_progress,
            "seq": start.seq + told.seq,
        }
    )


def told_end(task_id: str, report: GoalReport | None, error: str) -> TaskSummary:
    """What a sub-goal's end tells its parent: completed only if the goal was, what it
    spent, how far it got, and why not. `report` is the sub-goal's report (its failure
    carries it too), None when it ended without one; `error` then says how it ended."""
    if report is None:
        return TaskSummary(
            task_id=task_id, status=TaskStatus.FAILED, error=error[:MAX_SHORT_REASON_CHARS]
        )
    completed = report.status is GoalStatus.COMPLETED
    why = None if completed else f"sub-goal {report.goal_id!r} {report.status}: {report.error}"
    return TaskSummary(
        task_id=task_id,
        status=TaskStatus.COMPLETED if completed else TaskStatus.FAILED,
        tokens_used=report.progress.tokens_used,
        cost_usd=report.progress.cost_usd,
        goal_progress=progress_line(report.progress),
        error=None if why is None else why[:MAX_SHORT_REASON_CHARS],
    )


def subgoal_ended(start: TaskSummary, told: TaskSummary, seq: int) -> TaskSummary:
    """The task once its sub-goal ended as `told`; `seq` is its newest change number."""
    return subgoal_running(start, told).model_copy(
        update={"status": told.status, "error": told.error, "waiting_on": [], "seq": seq + 1}
    )


def subgoal_outcome(
    start: TaskSummary, report: GoalReport | None, error: str, seq: int
) -> TaskSummary:
    """The task once its sub-goal ended with `report` (or without one, as `error` says)."""
    return subgoal_ended(start, told_end(start.task_id, report, error), seq)
