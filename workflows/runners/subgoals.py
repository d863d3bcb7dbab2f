"""A window's tasks that are goals of their own: each runs as a child `GoalWorkflow`,
counted as one task, its progress shown beside it and its report taken as its end.

What a sub-goal inherits and what its end means are the core's (`goalkeeper.subgoals`).
"""

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, ChildWorkflowError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.read_model import ReadModelActivities
    from goalkeeper.models import GoalReport, TaskSummary, TaskView
    from goalkeeper.records import EventKind, RecordTask
    from goalkeeper.statuses import TaskStatus
    from goalkeeper.subgoals import subgoal_id, subgoal_outcome, subgoal_spec
    from workflows.options import record

if TYPE_CHECKING:
    from workflows.runners.window import TaskWindow


async def start(window: "TaskWindow", i: int) -> None:
    """Start a task's sub-goal: a child goal that inherits this goal's approvers and
    policies, counted here as one task, its progress shown beside it."""
    spec, before = window.specs[i], window.summary(i)
    child = subgoal_id(window.goal_id, spec.id or "")
    begun = before.model_copy(
        update={
            "status": TaskStatus.ASSIGNED,
            "agent_id": None,
            "assignment_id": None,
            "attempts": before.attempts + 1,
            "waiting_on": [],
            "error": None,
            "goal_progress": None,
            "seq": before.seq + 1,
        }
    )
    window.keep(i, begun)
    window.subgoals[i] = begun
    window.schedule.change(i, TaskStatus.ASSIGNED)
    await record(
        ReadModelActivities.record_task,
        RecordTask(
            task=_view(window, i, begun, started_at=workflow.now()),
            event=window.event(
                EventKind.SUBGOAL_STARTED,
                f"task {spec.id!r} runs as sub-goal {child!r}",
                spec.id,
                key=(begun.seq,),
            ),
        ),
        f"record sub-goal {child}",
    )
    header = window.header.model_copy(update={"goal_id": window.goal_id})
    handle = await workflow.start_child_workflow(
        "GoalWorkflow",
        subgoal_spec(header, spec, window.goal_run_id),
        id=child,
        result_type=GoalReport,
        parent_close_policy=ParentClosePolicy.ABANDON,
        id_reuse_policy=WorkflowIDReusePolicy.TERMINATE_IF_RUNNING,
        static_summary=f"{spec.title} (sub-goal)",
    )
    window.watchers[i] = asyncio.create_task(_watch(window, i, handle))


async def _watch(
    window: "TaskWindow", i: int, handle: workflow.ChildWorkflowHandle[Any, Any]
) -> None:
    """Take the task's end from its sub-goal's report, which its failure carries too."""
    report: GoalReport | None = None
    error = ""
    try:
        report = GoalReport.model_validate(await handle)
    except ChildWorkflowError as exc:
        cause = exc.cause
        if isinstance(cause, ApplicationError) and cause.type == "GoalFailed":
            with contextlib.suppress(Exception):  # a report of another shape: none
                report = GoalReport.model_validate(cause.details[0])
        error = f"sub-goal ended without an outcome: {cause or exc}"
    begun = window.subgoals.pop(i)
    window.ends.append((i, subgoal_outcome(begun, report, error, window.summary(i).seq)))
    window.watchers.pop(i, None)


async def record_end(window: "TaskWindow", i: int, summary: TaskSummary) -> None:
    """Write how a task that is a goal ended; its result is its sub-goal's deliverable."""
    task_id = summary.task_id
    child = subgoal_id(window.goal_id, task_id)
    done = summary.status is TaskStatus.COMPLETED
    view = _view(window, i, summary, ended_at=workflow.now())
    view.result = {"$ref": f"deliverables/{child}"}
    await record(
        ReadModelActivities.record_task,
        RecordTask(
            task=view,
            event=window.event(
                EventKind.TASK_COMPLETED if done else EventKind.TASK_FAILED,
                f"task {task_id!r} {summary.status}: sub-goal {child!r} "
                + (summary.goal_progress or "ended")
                + ("" if done else f" ({summary.error})"),
                task_id,
                key=(summary.seq,),
            ),
        ),
        f"record sub-goal {child} {summary.status}",
    )


def _view(window: "TaskWindow", i: int, summary: TaskSummary, **changes: Any) -> TaskView:
    """The read model's row of a task that is a goal (one with no agent of its own)."""
    spec = window.specs[i]
    return TaskView(
        goal_id=window.goal_id,
        goal_run_id=window.goal_run_id,
        task_id=summary.task_id,
        title=spec.title,
        skill=spec.skill,
        depends_on=spec.depends_on,
        status=summary.status,
        attempts=summary.attempts,
        tokens_used=summary.tokens_used,
        cost_usd=summary.cost_usd,
        error=summary.error,
        seq=summary.seq,
        subgoal_id=subgoal_id(window.goal_id, summary.task_id),
        **changes,
    )
