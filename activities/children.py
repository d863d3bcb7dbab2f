"""Tasks that outlive the goal run that started them: handed to the goal's next run.

A goal continues as new without waiting for its running tasks (one may wait days for
an approval) or sub-goals. Its new run adopts them: each is asked, by signal, to tell
the goal how it ends. One that ended before it could be asked is read from Temporal.
"""

import contextlib
from typing import Any

from pydantic import ValidationError
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from goalkeeper.models import GoalReport, TaskSummary
from goalkeeper.records import AdoptTasks
from goalkeeper.seals import SealKeys, sealed
from goalkeeper.statuses import TaskStatus
from goalkeeper.subgoals import subgoal_outcome


class ChildActivities:
    """Adopts a goal's running tasks; holds the worker's Temporal client."""

    def __init__(self, client: Client, seal_keys: SealKeys) -> None:
        self.client = client
        self.seal_keys = seal_keys

    @activity.defn
    async def adopt_tasks(self, request: AdoptTasks) -> list[TaskSummary]:
        """Ask each task to report its end to the goal; return the ends of those that
        had already ended (they can no longer be asked)."""
        ended = []
        for task in request.tasks:
            workflow_id = f"{request.goal_id}/{task.task_id}"
            handle = self.client.get_workflow_handle(workflow_id)
            adopt = {"goal_run_id": request.goal_run_id}
            try:
                await handle.signal("adopt", sealed(self.seal_keys, "adopt", workflow_id, adopt))
                continue
            except RPCError:
                status = (await handle.describe()).status
                if status is WorkflowExecutionStatus.RUNNING:
                    raise  # not because it ended: retried like any activity
            start = request.subgoals.get(task.task_id)
            if start is None:
                ended.append(await _outcome(handle, status, task))
            else:
                report, error = await _report(handle, status)
                ended.append(subgoal_outcome(start, report, error, task.seq))
        return ended


async def _outcome(
    handle: WorkflowHandle[Any, Any], status: WorkflowExecutionStatus | None, before: TaskSummary
) -> TaskSummary:
    """How a task workflow that has ended ended: its result, or a failure saying why not."""
    if status is WorkflowExecutionStatus.COMPLETED:
        with contextlib.suppress(WorkflowFailureError):
            return TaskSummary.model_validate(await handle.result())
    error = f"task workflow ended without an outcome: {status.name if status else 'unknown'}"
    return before.model_copy(
        update={"status": TaskStatus.FAILED, "error": error, "seq": before.seq + 1}
    )


async def _report(
    handle: WorkflowHandle[Any, Any], status: WorkflowExecutionStatus | None
) -> tuple[GoalReport | None, str]:
    """A sub-goal's report, which its failure carries too, or how it ended without one."""
    try:
        return GoalReport.model_validate(await handle.result()), ""
    except WorkflowFailureError as exc:
        cause = exc.cause
        if isinstance(cause, ApplicationError) and cause.type == "GoalFailed" and cause.details:
            with contextlib.suppress(ValidationError):  # a report of another shape: none
                return GoalReport.model_validate(cause.details[0]), ""
    return None, f"sub-goal ended without an outcome: {status.name if status else 'unknown'}"
