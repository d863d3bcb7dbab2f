"""Addressing one task from the CLI: `GOAL_ID/TASK_ID`, with errors that say what exists."""

from typing import Any

from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from goalkeeper.models import TaskView
from interfaces.cli.goals import goal_handle
from interfaces.cli.session import EXIT_USAGE, CliError, Session
from store.paging import goal_tasks
from workflows.task import TaskWorkflow


def split_task_ref(ref: str) -> tuple[str, str]:
    goal_id, _, task_id = ref.rpartition("/")
    if not goal_id or not task_id:
        raise CliError(f"expected a task as GOAL_ID/TASK_ID, got {ref!r}", EXIT_USAGE)
    return goal_id, task_id


async def task_view(session: Session, ref: str) -> TaskView:
    """The task's state; names the goal's tasks if there is no such task."""
    goal_id, task_id = split_task_ref(ref)
    client = await session.client()
    try:
        return await client.get_workflow_handle(ref).query(TaskWorkflow.status)
    except RPCError as exc:
        if exc.status is not RPCStatusCode.NOT_FOUND:
            raise
    goal = await goal_handle(session, goal_id)
    known = {v.task_id: v for v in await goal_tasks(client, goal.id)}
    if task_id not in known:
        raise CliError(
            f"goal {goal_id!r} has no task {task_id!r}; its tasks: {', '.join(known)}", EXIT_USAGE
        )
    state = known[task_id].status
    raise CliError(f"task {ref!r} has not started yet (it is {state})")


def require_open(view: TaskView) -> None:
    if view.status.is_terminal:
        raise CliError(f"task {view.goal_id}/{view.task_id} already ended ({view.status})")


async def send_update(session: Session, workflow_id: str, name: str, payload: Any) -> Any:
    """Send an update and return its answer; a rejection becomes a one-line error."""
    client = await session.client()
    try:
        return await client.get_workflow_handle(workflow_id).execute_update(name, payload)
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        raise CliError(
            cause.message if isinstance(cause, ApplicationError) else str(cause)
        ) from exc
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            raise CliError(f"{workflow_id!r} has already ended: {exc.message}") from exc
        raise
