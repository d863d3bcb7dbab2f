"""A goal's report at its end: the deliverable compiled, the report recorded with the
goal's last status, and improvements looked for in its record.

What the report says is the core's (`goalkeeper.reports`).
"""

from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.deliverables import DeliverableActivities
    from activities.read_model import ReadModelActivities
    from activities.suggestions import SuggestionActivities
    from goalkeeper.models import GoalReport, GoalSpec, Progress, TaskReport
    from goalkeeper.records import CompileDeliverable, EventKind, FinishGoal, goal_event
    from goalkeeper.statuses import GoalStatus
    from goalkeeper.suggestions import SuggestFor
    from workflows.options import record

COMPILE_TIMEOUT = timedelta(minutes=5)
"""Compiling a deliverable: every result of a goal of any size, read a page at a time."""
SUGGEST_TIMEOUT = timedelta(minutes=1)
"""Reading a goal's record for suggestions: bounded queries, whatever its size."""


async def record_report(
    goal_id: str,
    goal_run_id: str,
    header: GoalSpec,
    status: GoalStatus,
    error: str | None,
    tasks: list[TaskReport],
    tasks_total: int,
    progress: Callable[[], Progress],
) -> GoalReport:
    """Compile the goal's deliverable, then record its report, which says the goal's
    `progress` once that is done; `tasks` are the lines it lists of `tasks_total`."""
    deliverable_bytes: int = await record(
        DeliverableActivities.compile_deliverable,
        CompileDeliverable(goal_id=goal_id, goal_run_id=goal_run_id),
        "compile the deliverable",
        COMPILE_TIMEOUT,
    )
    report = GoalReport(
        goal_id=goal_id,
        title=header.title,
        status=status,
        progress=progress(),
        tasks=tasks,
        tasks_omitted=tasks_total - len(tasks),
        error=error,
        deliverable_bytes=deliverable_bytes,
    )
    await record(
        ReadModelActivities.finish_goal,
        FinishGoal(
            goal_id=goal_id,
            status=status,
            report=report,
            event=goal_event(
                goal_id,
                goal_run_id,
                EventKind.GOAL_FINISHED,
                f"goal {goal_id!r} {status}: "
                f"{report.progress.tasks_completed} of {report.progress.tasks_total} tasks "
                "completed",
            ),
        ),
        "record goal report",
    )
    return report


async def suggest(goal_id: str) -> None:
    """Look for improvements in the goal's record; advice never holds up its end."""
    if not workflow.patched("suggestions-at-end"):  # goals that ended before it
        return
    try:
        await workflow.execute_local_activity_method(
            SuggestionActivities.suggest_improvements,
            SuggestFor(goal_id=goal_id),
            start_to_close_timeout=SUGGEST_TIMEOUT,
            retry_policy=RetryPolicy(maximum_attempts=3),
            summary="look for improvements",
        )
    except ActivityError as exc:
        workflow.logger.warning(f"no suggestions for goal {goal_id!r}: {exc.cause}")
