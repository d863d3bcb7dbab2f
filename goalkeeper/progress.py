"""Progress derived from task counts, never stored: the same arithmetic everywhere."""

from collections.abc import Mapping

from goalkeeper.models import BudgetState, GoalCheckpoint, Progress
from goalkeeper.scheduling import STATUSES
from goalkeeper.statuses import GoalStatus, TaskStatus


def percentage(completed: int, total: int) -> float:
    """`completed / total` as a percentage rounded half up to one decimal.

    Integer arithmetic, so it equals PostgreSQL's `round(100.0 * completed / total, 1)`
    exactly and never drifts with floating point.
    """
    if total <= 0:
        return 0.0
    return ((2000 * completed + total) // (2 * total)) / 10


def checkpoint_figures(
    checkpoint: GoalCheckpoint,
) -> tuple[dict[TaskStatus, int], set[str], set[str], float, int]:
    """Counts, agents, agents that completed work, cost and tokens, as a checkpoint holds
    them: what a goal's next run shows until it has loaded its state again."""
    if checkpoint.window is not None:
        window = checkpoint.window
        summaries = window.tasks.values()
        return (
            window.schedule.counts(),
            set(window.agents),
            set(window.agents_completed),
            sum(s.cost_usd for s in summaries),
            sum(s.tokens_used for s in summaries),
        )
    counts = dict.fromkeys(STATUSES, 0)
    agents: set[str] = set()
    completed: set[str] = set()
    cost, tokens = 0.0, 0
    for p in checkpoint.partitions:
        if p.update is None:
            counts[TaskStatus.PENDING] += p.end - p.start
            continue
        for status, n in p.update.counts.items():
            counts[status] += n
        agents.update(p.update.agents)
        completed.update(p.update.agents_completed)
        cost += p.update.cost_usd
        tokens += p.update.tokens_used
    return counts, agents, completed, cost, tokens


def compute_progress(
    goal_id: str,
    status: GoalStatus,
    stage: str,
    counts: Mapping[TaskStatus, int],
    *,
    agents_total: int,
    agents_completed: int,
    cost_usd: float,
    tokens_used: int,
    on_task_failure: str = "continue",
    tasks_added: int = 0,
    budget: BudgetState | None = None,
) -> Progress:
    """Progress from the number of tasks in each status; failed and skipped stay in the total.

    `tasks_added` counts tasks that joined while the goal ran (its plan, `add_tasks`):
    the total grew, and `calculation_method` says so.
    """
    total = sum(counts.values())
    completed = counts.get(TaskStatus.COMPLETED, 0)
    extra = {}
    if tasks_added:
        extra["calculation_method"] = (
            f"{Progress.model_fields['calculation_method'].default}; the total grew by "
            f"{tasks_added} tasks added while the goal ran (its plan, add_tasks)"
        )
    return Progress(
        goal_id=goal_id,
        status=status,
        stage=stage,
        progress_percentage=percentage(completed, total),
        tasks_total=total,
        tasks_completed=completed,
        tasks_failed=counts.get(TaskStatus.FAILED, 0),
        tasks_skipped=counts.get(TaskStatus.SKIPPED, 0),
        tasks_running=counts.get(TaskStatus.ASSIGNED, 0),
        tasks_awaiting_approval=counts.get(TaskStatus.AWAITING_APPROVAL, 0),
        tasks_pending=counts.get(TaskStatus.PENDING, 0),
        agents_total=agents_total,
        agents_completed=agents_completed,
        cost_usd=round(cost_usd, 6),
        tokens_used=tokens_used,
        on_task_failure=on_task_failure,
        tasks_added=tasks_added,
        budget_usd=budget.usd if budget else None,
        budget_tokens=budget.tokens if budget else None,
        **extra,
    )
