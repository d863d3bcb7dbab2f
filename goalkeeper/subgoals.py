"""Sub-goals: a task that is a goal of its own, run as a child goal and counted as one task.

What a sub-goal inherits from the goal it runs for, and what its end means to that goal,
are decided here; the workflows only start it and pass its report on.
"""

from typing import Any

from goalkeeper.models import GoalReport, GoalSpec, ParentGoal, Progress, TaskSpec, TaskSummary
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
)
"""What a sub-goal takes from its parent unless its own spec says otherwise: its work
answers to the same approvers and runs under the same policies."""


def subgoal_id(goal_id: str, task_id: str) -> str:
    """A sub-goal's goal id, which is also its workflow id: where its task's would be."""
    return f"{goal_id}/{task_id}"


def subgoal_spec(header: GoalSpec, task: TaskSpec, goal_run_id: str) -> dict[str, Any]:
    """The spec a task's sub-goal starts with: its own, over what it inherits."""
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
    return spec


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


def subgoal_outcome(
    start: TaskSummary, report: GoalReport | None, error: str, seq: int
) -> TaskSummary:
    """The task once its sub-goal ended: completed only if the goal was.

    `report` is the sub-goal's report (its failure carries it too), None when it ended
    without one (terminated, say), and `error` then says how it ended; `seq` is the
    newest change number the task had.
    """
    why: str | None = error
    line: str | None = None
    status, tokens, cost = TaskStatus.FAILED, 0, 0.0
    if report is not None:
        completed = report.status is GoalStatus.COMPLETED
        status = TaskStatus.COMPLETED if completed else TaskStatus.FAILED
        tokens, cost = report.progress.tokens_used, report.progress.cost_usd
        why = None if completed else f"sub-goal {report.goal_id!r} {report.status}: {report.error}"
        line = progress_line(report.progress)
    return start.model_copy(
        update={
            "status": status,
            "tokens_used": start.tokens_used + tokens,
            "cost_usd": round(start.cost_usd + cost, 6),
            "error": None if why is None else why[:500],
            "goal_progress": line,
            "waiting_on": [],
            "seq": seq + 1,
        }
    )
