"""A window's failed tasks under `on_task_failure: ask_approver`: its approvers asked
whether to retry each, their decision taken, and the task given up when none came in time.

Whether a decision may count is the ledger's to judge (`TaskLedger.judge_retry`).
"""

from typing import TYPE_CHECKING

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.read_model import ReadModelActivities
    from goalkeeper.metrics import Reassignment
    from goalkeeper.models import ApprovalDecision, TaskSummary
    from goalkeeper.records import EventKind
    from goalkeeper.statuses import Decision
    from monitoring import metrics
    from workflows.options import record

if TYPE_CHECKING:
    from workflows.runners.window import TaskWindow


async def ask(window: "TaskWindow", failed: TaskSummary) -> None:
    """Record that the goal's approvers are asked whether to retry the `failed` task."""
    await record(
        ReadModelActivities.record_event,
        window.event(
            EventKind.RETRY_REQUESTED,
            f"task {failed.task_id!r} failed; asking {window.header.approvers} "
            "whether to retry it (approve) or give it up (reject)",
            failed.task_id,
            key=(failed.seq,),
        ),
        f"ask whether to retry {failed.task_id}",
    )


def take(window: "TaskWindow", decision: ApprovalDecision) -> None:
    """Retry the failed task (approve) or give it up (reject), as the approver said.

    Applied to the schedule at once, so the decision is part of any checkpoint and
    of the progress its sender reads next; the loop records it.
    """
    assert decision.task_id is not None
    i = window.position(decision.task_id)
    assert i is not None
    schedule = window.schedule
    retry = decision.decision is Decision.APPROVE
    if retry:
        schedule.retry(i)
        window.notes[i] = f"{decision.approver} asked for a retry"
        metrics.reassigned(workflow.metric_meter(), Reassignment.RETRY_APPROVED)
    cascade = None if retry else schedule.give_up(i)
    event = window.event(
        EventKind.TASK_RETRIED if retry else EventKind.DECISION_ACCEPTED,
        f"{decision.approver!r} chose to {'retry' if retry else 'give up'} failed task "
        f"{decision.task_id!r}" + (f": {decision.comment}" if decision.comment else ""),
        decision.task_id,
        key=(window.summary(i).seq,),
    )

    async def write() -> None:
        await record(
            ReadModelActivities.record_event,
            event,
            f"record retry decision on {decision.task_id}",
        )
        if cascade is not None:
            await window.apply(cascade)

    window.later(write)


async def expire(window: "TaskWindow") -> None:
    """Give up on failed tasks whose approvers did not decide in time."""
    schedule = window.schedule
    for i in schedule.overdue(workflow.now()):
        task_id = schedule.plan.ids[i]
        cascade = schedule.give_up(i)
        await record(
            ReadModelActivities.record_event,
            window.event(
                EventKind.DECISION_ACCEPTED,
                f"no retry decision on failed task {task_id!r} in time; giving it up",
                task_id,
                key=(window.summary(i).seq,),
            ),
            f"give up {task_id}",
        )
        await window.apply(cascade)
