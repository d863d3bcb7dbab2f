"""What the Temporal UI shows of a goal: its one-glance status, its stage, its tasks' notes.

Text from figures the goal workflow holds; the workflow sets it as its run's current
details, so a glance at the UI says how far the goal is and what holds it up.
"""

from collections.abc import Sequence

from goalkeeper import budgets
from goalkeeper.models import GoalCheckpoint, Progress, TaskSummary
from goalkeeper.progress import checkpoint_figures
from goalkeeper.statuses import TaskStatus

DETAIL_LINES = 10
"""Tasks that need attention listed in the UI's current details; the rest are counted."""


def task_note(summary: TaskSummary, title: str) -> str:
    """What the UI should say about a running task that needs attention, if anything."""
    if summary.goal_progress and summary.status is TaskStatus.ASSIGNED:
        return f"{title}: {summary.goal_progress}"
    if summary.status is TaskStatus.AWAITING_APPROVAL:
        return f"waiting on approver {' or '.join(summary.waiting_on)} for '{title}'"
    if summary.status is TaskStatus.ASSIGNED and summary.attempts > 1:
        return f"'{title}' reassigned to {summary.agent_id} (attempt {summary.attempts})"
    return ""


def held_stage(
    failing: str | None,
    paused: str | None,
    refused: str | None,
    awaiting_retry: Sequence[str],
    holding: bool,
) -> str | None:
    """A running goal's stage when something holds it, the first that does: it is failing,
    paused at its budget, refused agents by a budget over it, awaiting retry decisions,
    or about to continue as new. None when nothing does."""
    if failing:
        return f"failing: {failing}"
    if paused:
        return paused
    if refused:
        return f"paused: budget ({refused}); assignments start again once it is raised"
    if awaiting_retry:
        shown = ", ".join(awaiting_retry[:DETAIL_LINES])
        more = len(awaiting_retry) - DETAIL_LINES
        return f"awaiting a retry decision on {shown}" + (f" and {more} more" if more > 0 else "")
    if holding:
        return "running: continuing as new"
    return None


def resumed_stage(checkpoint: GoalCheckpoint) -> str | None:
    """A goal's stage in its next run before that has loaded its state: paused, if its
    budget held it when it continued as new."""
    held = checkpoint.budget
    if held is None or held.paused_at is None or held.stopped is not None:
        return None
    *_, cost, tokens = checkpoint_figures(checkpoint)
    return f"paused: budget ({budgets.describe(held, cost, tokens)})"


def current_details(progress: Progress, budget: str | None, notes: Sequence[str]) -> str:
    """The goal's status at a glance: tasks done, agents and cost, then its stage, its
    budget (`budget`, when it has one), failures, and the running tasks' `notes`."""
    lines = [
        f"**{progress.tasks_completed} of {progress.tasks_total} tasks done** "
        f"({progress.progress_percentage}%), {progress.agents_total} agents, "
        f"${progress.cost_usd:.4f}"
    ]
    if progress.stage not in ("running", "done"):
        lines.append(progress.stage)
    if budget is not None:
        lines.append(f"budget: {budget}")
    if progress.tasks_failed or progress.tasks_skipped:
        lines.append(f"{progress.tasks_failed} failed, {progress.tasks_skipped} skipped")
    lines += notes[:DETAIL_LINES]
    if len(notes) > DETAIL_LINES:
        lines.append(f"and {len(notes) - DETAIL_LINES} more")
    return "\n\n".join(lines)
