"""Progress derived from task states, never stored: the same arithmetic everywhere."""

from collections.abc import Iterable

from goalkeeper.models import Progress, TaskView
from goalkeeper.statuses import GoalStatus, TaskStatus


def percentage(completed: int, total: int) -> float:
    """`completed / total` as a percentage rounded half up to one decimal.

    Integer arithmetic, so it equals PostgreSQL's `round(100.0 * completed / total, 1)`
    exactly and never drifts with floating point.
    """
    if total <= 0:
        return 0.0
    return ((2000 * completed + total) // (2 * total)) / 10


def compute_progress(
    goal_id: str,
    status: GoalStatus,
    stage: str,
    tasks: Iterable[TaskView],
    on_task_failure: str = "continue",
) -> Progress:
    """Count tasks by status; failed and skipped tasks stay in the total."""
    tasks = list(tasks)
    by_status = {s: 0 for s in TaskStatus}
    agents: set[str] = set()
    agents_completed: set[str] = set()
    for task in tasks:
        by_status[task.status] += 1
        agents.update(task.agent_ids)
        if task.status is TaskStatus.COMPLETED and task.agent_id:
            agents_completed.add(task.agent_id)
    completed = by_status[TaskStatus.COMPLETED]
    return Progress(
        goal_id=goal_id,
        status=status,
        stage=stage,
        progress_percentage=percentage(completed, len(tasks)),
        tasks_total=len(tasks),
        tasks_completed=completed,
        tasks_failed=by_status[TaskStatus.FAILED],
        tasks_skipped=by_status[TaskStatus.SKIPPED],
        tasks_running=by_status[TaskStatus.ASSIGNED],
        tasks_awaiting_approval=by_status[TaskStatus.AWAITING_APPROVAL],
        tasks_pending=by_status[TaskStatus.PENDING],
        agents_total=len(agents),
        agents_completed=len(agents_completed),
        cost_usd=round(sum(t.cost_usd for t in tasks), 6),
        tokens_used=sum(t.tokens_used for t in tasks),
        on_task_failure=on_task_failure,
    )
