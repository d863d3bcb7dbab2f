"""Addressing one task from the CLI: `GOAL_ID/TASK_ID`, with errors that say what exists."""

import asyncio

from temporalio.service import RPCError, RPCStatusCode

from goalkeeper.cli.goals import goal_handle
from goalkeeper.cli.session import EXIT_USAGE, CliError, Session
from goalkeeper.models import TaskView
from workflows.goal import GoalWorkflow
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
    views: list[TaskView] = await goal.query(GoalWorkflow.tasks)
    known = {v.task_id: v for v in views}
    if task_id not in known:
        raise CliError(f"goal {goal_id!r} has no task {task_id!r}; its tasks: {', '.join(known)}")
    state = known[task_id].status
    raise CliError(f"task {ref!r} has not started yet (it is {state})")


def require_open(view: TaskView) -> None:
    if view.status.is_terminal:
        raise CliError(f"task {view.goal_id}/{view.task_id} already ended ({view.status})")


async def wait_for_change(session: Session, before: TaskView, within: float = 10) -> TaskView:
    """The task's state once it moved past `before`, or as it is after `within` seconds."""
    ref = f"{before.goal_id}/{before.task_id}"
    current = before
    for _ in range(int(within / 0.1)):
        current = await task_view(session, ref)
        if current.seq > before.seq:
            return current
        await asyncio.sleep(0.1)
    return current
