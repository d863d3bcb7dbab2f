"""What a goal's report says: why it did not succeed, and a line per task.

Text and choices only; the goal workflow records the report and returns it.
"""

from collections.abc import Sequence

from goalkeeper.details import DETAIL_LINES
from goalkeeper.models import Progress, TaskReport, TaskSummary
from goalkeeper.statuses import TaskStatus

REPORT_TASKS = 500
"""Tasks listed in a goal's report; beyond it, completed ones are only counted."""


def unfinished_tasks(unfinished: Sequence[tuple[str, TaskStatus]]) -> str:
    """The tasks that did not complete, by id and status: the first few, then how many more."""
    listed = "; ".join(f"{task_id} {status}" for task_id, status in unfinished[:DETAIL_LINES])
    more = len(unfinished) - DETAIL_LINES
    return listed + (f"; and {more} more" if more > 0 else "")


def unfinished_partitions(progress: Progress) -> str:
    """The tasks of a goal run in partitions that did not complete: counted, since the
    goal holds no task of its own."""
    return (
        f"{progress.tasks_failed} failed, {progress.tasks_skipped} skipped "
        "(the partitions' tasks queries and the read model list them)"
    )


def goal_error(
    progress: Progress,
    on_task_failure: str,
    failing: str | None,
    unfinished: str,
    unmet: str | None,
) -> str | None:
    """Why a goal that ended did not succeed, or None if it did: the tasks that did not
    complete (`unfinished` lists them) under its policy, and its success criteria unmet."""
    total = progress.tasks_total
    not_done = total - progress.tasks_completed
    error = None
    if not_done:
        error = (
            f"{not_done} of {total} tasks did not complete "
            f"(on_task_failure={on_task_failure}"
            + (f", {failing}" if failing else "")
            + f"): {unfinished}"
        )
    if unmet:
        error = f"{unmet}; {error}" if error else unmet
    return error


def reported(unfinished: list[int], total: int) -> Sequence[int]:
    """Which of a goal's `total` tasks its report lists: all of them, or, past
    `REPORT_TASKS`, the first of those that did not complete (`unfinished`)."""
    return unfinished[:REPORT_TASKS] if total > REPORT_TASKS else range(total)


def task_report(summary: TaskSummary, title: str, outcome: TaskStatus) -> TaskReport:
    """A task's line in its goal's report."""
    return TaskReport(
        task_id=summary.task_id,
        title=title,
        outcome=outcome,
        agent_id=summary.agent_id,
        attempts=summary.attempts,
        reworks=summary.reworks,
        tokens_used=summary.tokens_used,
        cost_usd=summary.cost_usd,
        duration_seconds=summary.duration_seconds,
        error=summary.error,
    )
