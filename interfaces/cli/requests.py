"""`ask`: a question, triaged by an agent into an answer or a goal."""

import argparse
from typing import Any

from temporalio.client import WorkflowFailureError

from goalkeeper.requests import RequestView
from goalkeeper.statuses import RequestStatus
from interfaces.cli.commands import Command, Commands
from interfaces.cli.session import EXIT_FAILED, EXIT_USAGE, CliError, Session
from interfaces.starting import AlreadyStarted, InvalidRequest, start_request
from workflows.request import RequestWorkflow


def add_commands(commands: Commands, command: Command) -> None:
    asking = command(commands, "ask", "ask a question: an agent answers it or sets a goal", ask)
    asking.add_argument("question", help="what you want answered or done")
    asking.add_argument("--workspace", default="default", help="workspace (default)")
    asking.add_argument("--approver", action="append", default=[], help="an approver (repeat)")
    asking.add_argument("--request-id", help="request id (default: generated)")
    asking.add_argument("--wait", action="store_true", help="wait for the answer or the goal")


async def ask(session: Session, args: argparse.Namespace) -> None:
    spec = {"question": args.question, "workspace": args.workspace, "approvers": args.approver}
    queue = session.settings.task_queue
    try:
        request_id = await start_request(session.client, queue, spec, args.request_id)
    except InvalidRequest as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    except AlreadyStarted as exc:
        raise CliError(str(exc)) from exc
    handle = (await session.client()).get_workflow_handle_for(RequestWorkflow.run, request_id)
    link = session.ui_link(request_id)
    if not args.wait:
        session.emit({"request_id": request_id, "ui": link}, f"asked: request {request_id}\n{link}")
        return
    try:
        view: RequestView = await handle.result()
    except WorkflowFailureError as exc:
        raise CliError(f"request {request_id!r} failed: {exc.cause}") from exc
    session.emit(outcome(view), describe(view))
    if view.status not in (RequestStatus.ANSWERED, RequestStatus.COMPLETED):
        session.exit_code = EXIT_FAILED


def outcome(view: RequestView) -> dict[str, Any]:
    """What scripts read: which it was, the answer or the goal, and how it ended."""
    found: dict[str, Any] = {"request_id": view.request_id, "kind": view.kind}
    if view.kind == "answer":
        found["answer"] = view.answer
    elif view.kind == "goal":
        found["goal_id"] = view.goal_id
        found["goal_status"] = view.goal_status
    found.update(status=view.status.value, reason=view.reason, error=view.error)
    return found


def describe(view: RequestView) -> str:
    if view.kind == "answer":
        return f"{view.answer}\n(answered directly: {view.reason or 'no reason given'})"
    if view.kind == "goal":
        return (
            f"request {view.request_id} became goal {view.goal_id}, which ended "
            f"{view.goal_status}\n(why a goal: {view.reason or 'no reason given'})"
        )
    return f"request {view.request_id} {view.status.value}: {view.error}"
