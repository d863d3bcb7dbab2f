"""`approvals`, `approve`, `reject`: what waits for an approver, and their decisions."""

import argparse

from goalkeeper.models import Progress, TaskView
from goalkeeper.signing import sign_decision
from goalkeeper.statuses import Decision, TaskStatus
from interfaces.cli import queries
from interfaces.cli.keys import signed
from interfaces.cli.session import Session, table
from interfaces.cli.tasks import require_open, send_update, task_view
from interfaces.keyring import load_key


async def awaiting(session: Session, args: argparse.Namespace) -> None:
    rows = await queries.awaiting_approval(await session.pool(), args.approver)
    session.emit(
        [dict(r) for r in rows],
        table(
            [
                [
                    f"{r['goal_id']}/{r['task_id']}",
                    r["title"],
                    r["agent_id"],
                    ", ".join(r["approvers"]),
                    _short(r["result"]),
                ]
                for r in rows
            ],
            ["task", "title", "agent", "approvers", "result"],
        )
        if rows
        else f"nothing awaits {'approval' if not args.approver else args.approver}",
    )


async def approve(session: Session, args: argparse.Namespace) -> None:
    await _decide(session, args, Decision.APPROVE)


async def reject(session: Session, args: argparse.Namespace) -> None:
    await _decide(session, args, Decision.REJECT)


async def _decide(session: Session, args: argparse.Namespace, decision: Decision) -> None:
    """Decide on a task's result; on a failed task, decide whether the goal retries it."""
    view = await task_view(session, args.task)
    payload = {"approver": args.approver, "decision": decision.value, "comment": args.comment}
    verb = "approved" if decision is Decision.APPROVE else "rejected"
    if view.status is TaskStatus.FAILED:
        retry = {**payload, "task_id": view.task_id, "attempt": view.attempts}
        retry = signed(args.approver, "retry", view.goal_id, retry)
        progress = Progress.model_validate(
            await send_update(session, view.goal_id, "decide", retry)
        )
        session.emit(
            progress.model_dump(mode="json"),
            f"{args.approver} {'retries' if decision is Decision.APPROVE else 'gives up'} "
            f"{args.task}; the goal is {progress.stage}",
        )
        return
    require_open(view)
    key = load_key("approver", args.approver)
    if key is not None:  # signed over the very result it decides on
        payload["signature"] = sign_decision(key, view, payload)
    after = TaskView.model_validate(await send_update(session, args.task, "decide", payload))
    session.emit(
        after.model_dump(mode="json"),
        f"{args.approver} {verb} {args.task}; it is now {after.status}",
    )


def _short(value: object, limit: int = 40) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
