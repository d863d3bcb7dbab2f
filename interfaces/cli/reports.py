"""`report`: an agent's report on a task, sent by hand."""

import argparse

from goalkeeper.models import TaskView
from goalkeeper.statuses import TaskStatus
from interfaces.cli.commands import Command, Commands
from interfaces.cli.session import CliError, Session
from interfaces.cli.tasks import require_open, send_update, task_view


def add_commands(commands: Commands, command: Command) -> None:
    send = command(commands, "report", "send an agent report for a task by hand", report)
    send.add_argument("task", help="GOAL_ID/TASK_ID")
    send.add_argument("--outcome", choices=["completed", "failed"], default="completed")
    send.add_argument("--result", help="the work's result")
    send.add_argument("--error", help="why it failed")
    send.add_argument("--agent", help="agent id (default: the assigned agent)")
    send.add_argument("--assignment", help="assignment id (default: the current one)")
    send.add_argument("--tokens", type=int, default=0, help="tokens used")
    send.add_argument("--cost", type=float, default=0.0, help="cost in USD")


async def report(session: Session, args: argparse.Namespace) -> None:
    view = await task_view(session, args.task)
    require_open(view)
    if view.status is not TaskStatus.ASSIGNED:
        raise CliError(f"task {args.task} is not waiting for a report (it is {view.status})")
    payload = {
        "agent_id": args.agent or view.agent_id,
        "assignment_id": args.assignment or view.assignment_id,
        "outcome": args.outcome,
        "result": args.result,
        "error": args.error,
        "tokens_used": args.tokens,
        "cost_usd": args.cost,
    }
    after = TaskView.model_validate(await send_update(session, args.task, "report", payload))
    session.emit(
        after.model_dump(mode="json"), f"reported {args.outcome}; {args.task} is now {after.status}"
    )
