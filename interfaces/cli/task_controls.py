"""`task reassign|cancel`: one of a running goal's tasks taken from its agent, or ended
without a result, by one of the goal's approvers, signed with their key where this machine
has one (as `approve`, `reject` and `budget stop` are)."""

import argparse
from typing import Any

from pydantic import ValidationError
from temporalio.service import RPCError, RPCStatusCode

from goalkeeper.models import Progress, TaskView, describe_validation_error
from interfaces.cli.commands import Command, Commands
from interfaces.cli.goals import describe_progress, goal_handle
from interfaces.cli.keys import signed
from interfaces.cli.session import EXIT_USAGE, CliError, Session
from interfaces.cli.tasks import send_update, split_task_ref
from workflows.task import TaskWorkflow


def add_commands(commands: Commands, command: Command) -> None:
    task = commands.add_parser("task", help="reassign or cancel a running goal's task")
    actions = task.add_subparsers(dest="task_command", required=True, metavar="ACTION")
    moving = command(
        actions,
        "reassign",
        "take a task from its agent: to --agent, else to another that can take it",
        reassign,
    )
    moving.add_argument("task", help="GOAL_ID/TASK_ID")
    moving.add_argument("--agent", help="the agent to take it (one with its skill, taking work)")
    cancelling = command(
        actions,
        "cancel",
        "end a task that has not ended, without a result; what depends on it is skipped",
        cancel,
    )
    cancelling.add_argument("task", help="GOAL_ID/TASK_ID")
    for parser in (moving, cancelling):
        parser.add_argument(
            "--as", "--approver", dest="approver", required=True, help="approver name"
        )
        parser.add_argument("--comment", default="", help="why")


async def reassign(session: Session, args: argparse.Namespace) -> None:
    """Take a task from its agent as one of the goal's approvers; its agent's later report
    for that assignment is refused as stale."""
    goal_id, task_id = split_task_ref(args.task)
    await goal_handle(session, goal_id)
    payload: dict[str, Any] = {"task_id": task_id, "approver": args.approver}
    payload |= {"agent": args.agent, "comment": args.comment}
    view = await _task_now(session, args.task)
    if view is not None and view.assignment_id is not None:  # the one it takes, so once
        payload["assignment_id"] = view.assignment_id
    payload = _signed(args.approver, "reassign", goal_id, payload)
    after = Progress.model_validate(await send_update(session, goal_id, "reassign_task", payload))
    held = f" (from {view.agent_id})" if view is not None and view.agent_id else ""
    to = args.agent or "another agent that can take it"
    session.emit(
        after.model_dump(mode="json"),
        f"{args.approver} reassigned {args.task}{held} to {to}\n" + describe_progress(after),
    )


async def cancel(session: Session, args: argparse.Namespace) -> None:
    """Cancel a task that has not ended as one of the goal's approvers: it ends skipped,
    and what depends on it is skipped too; the goal goes on with the rest, or ends."""
    goal_id, task_id = split_task_ref(args.task)
    await goal_handle(session, goal_id)
    payload = {"task_id": task_id, "approver": args.approver, "comment": args.comment}
    payload = _signed(args.approver, "cancel", goal_id, payload)
    after = Progress.model_validate(await send_update(session, goal_id, "cancel_task", payload))
    session.emit(
        after.model_dump(mode="json"),
        f"{args.approver} cancelled {args.task}\n" + describe_progress(after),
    )


def _signed(approver: str, kind: str, goal_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    """`signed`, a request the goal could never take said as bad usage."""
    try:
        return signed(approver, kind, goal_id, payload)
    except ValidationError as exc:
        raise CliError(describe_validation_error(exc, kind), EXIT_USAGE) from exc


async def _task_now(session: Session, ref: str) -> TaskView | None:
    """The task as its workflow holds it now; None before it starts (the goal says why)."""
    client = await session.client()
    try:
        view: TaskView = await client.get_workflow_handle(ref).query(TaskWorkflow.status)
    except RPCError as exc:
        if exc.status is not RPCStatusCode.NOT_FOUND:
            raise
        return None
    return view
