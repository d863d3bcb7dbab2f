"""A window's tasks reassigned or cancelled by a person: judged on the window's state now,
then carried out by the loop (a sealed message to the task's workflow, or a cascade).

Whether a request may count is `goalkeeper.task_controls`'s to judge; who may send it,
and its signature, `workflows.goal.controls`'.
"""

from typing import TYPE_CHECKING

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    import workflows.sealing as sealing
    from activities.read_model import ReadModelActivities
    from goalkeeper.models import Abort, Reassign
    from goalkeeper.records import EventKind
    from goalkeeper.task_controls import (
        TaskCancel,
        TaskReassign,
        cancel_problem,
        cancel_reason,
        reassign_problem,
        reassign_reason,
        running_problem,
    )
    from workflows.options import record

if TYPE_CHECKING:
    from workflows.runners.window import TaskWindow

CANCELLING = ""
"""What `TaskWindow.controlled` holds for a task being cancelled (no assignment id is empty)."""


def judge_reassign(window: "TaskWindow", request: TaskReassign) -> str | None:
    """Why the task cannot be taken from its agent now, or None."""
    failing = running_problem(window.goal_id, "reassign", request.task_id, window.failing)
    if failing is not None:
        return failing
    i = window.position(request.task_id)
    if i is None:
        return reassign_problem(window.goal_id, request, None, None, False, False)
    schedule = window.schedule
    summary = window.summary(i)
    problem = reassign_problem(
        window.goal_id,
        request,
        schedule.status_of(i),
        summary,
        i in schedule.running,
        window.specs[i].goal is not None,
    )
    return problem or _underway(window, i, "reassign", summary.assignment_id)


def _underway(window: "TaskWindow", i: int, kind: str, assignment_id: str | None) -> str | None:
    """Why a request repeats one the task has not acted on yet: it is being cancelled, or
    its assignment is already being taken away."""
    taken = window.controlled.get(i)
    if taken is None or (taken != CANCELLING and taken != assignment_id):
        return None
    what = f"{kind} of task {window.schedule.plan.ids[i]!r} of goal {window.goal_id!r} rejected"
    if taken == CANCELLING:
        return f"{what}: it is being cancelled"
    return f"{what}: assignment {taken!r} is already being taken from its agent"


def judge_cancel(window: "TaskWindow", request: TaskCancel) -> str | None:
    """Why the task cannot be cancelled now, or None."""
    failing = running_problem(window.goal_id, "cancel", request.task_id, window.failing)
    if failing is not None:
        return failing
    i = window.position(request.task_id)
    status = None if i is None else window.schedule.status_of(i)
    problem = cancel_problem(
        window.goal_id, request, status, i is not None and i in window.schedule.retry_due
    )
    if problem is None and i is not None:
        problem = _underway(window, i, "cancel", None)
    if problem is None and i is not None and window.specs[i].goal is not None:
        child = window.workflow_id(i)
        problem = (
            f"cancel of task {request.task_id!r} of goal {window.goal_id!r} rejected: it runs "
            f"as goal {child!r} of its own; stop that goal instead (starter.py budget stop "
            f"{child} --as NAME)"
        )
    return problem


def skill_of(window: "TaskWindow", task_id: str) -> str:
    """The skill the task's agent needs."""
    i = window.position(task_id)
    assert i is not None
    return window.specs[i].skill


def take_reassign(window: "TaskWindow", request: TaskReassign) -> None:
    """Tell the task's workflow to take it from the agent that holds it now; the task
    records the new attempt, and refuses that agent's later report as stale."""
    i = window.position(request.task_id)
    assert i is not None
    summary = window.summary(i)
    assert summary.assignment_id is not None
    window.controlled[i] = summary.assignment_id
    to = window.workflow_id(i)
    message = Reassign(
        assignment_id=summary.assignment_id,
        reason=reassign_reason(request.approver, request.agent, request.comment),
        by=request.approver,
        agent_id=request.agent,
    )

    async def send() -> None:
        try:
            await workflow.get_external_workflow_handle(to).signal(
                "reassign", sealing.sealed("reassign", to, message)
            )
        except Exception as exc:  # its workflow ended meanwhile: nothing is left to take
            workflow.logger.warning(f"could not reassign task {request.task_id!r}: {exc}")

    window.later(send)


def take_cancel(window: "TaskWindow", request: TaskCancel) -> None:
    """End the task without a result: a running one is aborted (it ends skipped, its agent
    released), one not started is skipped at once; either way what depends on it is
    skipped, as when a failed task is given up."""
    i = window.position(request.task_id)
    assert i is not None
    why = cancel_reason(request.approver, request.comment)
    to = window.workflow_id(i)
    if i in window.schedule.running:
        window.controlled[i] = CANCELLING

        async def abort() -> None:
            try:
                await workflow.get_external_workflow_handle(to).signal(
                    "abort", sealing.sealed("abort", to, Abort(reason=why))
                )
            except Exception as exc:  # it ended meanwhile; its end is applied as it is
                workflow.logger.warning(f"could not cancel task {request.task_id!r}: {exc}")

        window.later(abort)
        return
    # Applied to the schedule now, so the progress its sender reads next counts it.
    cascade = window.schedule.cancel(i, why)
    event = window.event(
        EventKind.TASK_CANCELLED,
        f"task {request.task_id!r} {why}, before it started",
        request.task_id,
        detail={"approver": request.approver, "comment": request.comment[:200]},
        key=(window.summary(i).seq, "cancel"),
    )

    async def skip() -> None:
        await record(ReadModelActivities.record_event, event, f"record cancel of {to}")
        await window.apply(cascade)

    window.later(skip)
