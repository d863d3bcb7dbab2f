"""`approvals`, `approve`, `reject`: what waits for an approver, and their decisions."""

import argparse

from goalkeeper import queries
from goalkeeper.cli.session import CliError, Session, table
from goalkeeper.cli.tasks import require_open, task_view, wait_for_change
from goalkeeper.statuses import Decision, TaskStatus


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
    view = await task_view(session, args.task)
    require_open(view)
    if view.status is not TaskStatus.AWAITING_APPROVAL:
        raise CliError(f"task {args.task} is not awaiting approval (it is {view.status})")
    if args.approver not in view.waiting_on:
        raise CliError(
            f"{args.approver!r} may not decide on {args.task}; "
            f"its approvers are {', '.join(view.waiting_on)}"
        )
    client = await session.client()
    await client.get_workflow_handle(args.task).signal(
        "approval_decision",
        {"approver": args.approver, "decision": decision.value, "comment": args.comment},
    )
    after = await wait_for_change(session, view)
    session.emit(
        after.model_dump(mode="json"),
        f"{args.approver} {'approved' if decision is Decision.APPROVE else 'rejected'} "
        f"{args.task}; it is now {after.status}",
    )


def _short(value: object, limit: int = 40) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
