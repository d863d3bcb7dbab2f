"""`approvals`, `approve`, `reject`: what waits for an approver, and their decisions."""

import argparse
import json
from typing import Any

import asyncpg

from goalkeeper.models import Progress, TaskView
from goalkeeper.signing import sign_decision
from goalkeeper.statuses import Decision, TaskStatus
from interfaces.cli import queries
from interfaces.cli.commands import Command, Commands
from interfaces.cli.keys import signed
from interfaces.cli.session import Session, table
from interfaces.cli.tasks import require_open, send_update, task_view
from interfaces.keyring import load_key
from store.results import UnresolvedReference, resolve


def add_commands(commands: Commands, command: Command) -> None:
    waiting = command(commands, "approvals", "list tasks awaiting approval", awaiting)
    waiting.add_argument("--as", dest="approver", help="only those this approver may decide")
    waiting.add_argument("--full", action="store_true", help="print each result whole")
    for name, run in (("approve", approve), ("reject", reject)):
        decide = command(commands, name, f"{name} a task's result", run)
        decide.add_argument("task", help="GOAL_ID/TASK_ID")
        decide.add_argument("--as", dest="approver", required=True, help="approver name")
        decide.add_argument("--comment", default="", help="why (sent to the agent on reject)")


async def awaiting(session: Session, args: argparse.Namespace) -> None:
    """What waits for a decision: each result's content digest (what signatures bind) and
    its content, whole with --full, stored ones resolved."""
    pool = await session.pool()
    items = await queries.awaiting_approval(pool, args.approver)
    if args.full:
        for item in items:
            item["content"] = await _whole(pool, item)
    if not items:
        text = f"nothing awaits {'approval' if not args.approver else args.approver}"
    elif args.full:
        text = "\n\n".join(_shown_whole(item) for item in items)
    else:
        text = table(
            [
                [
                    f"{i['goal_id']}/{i['task_id']}",
                    i["title"],
                    i["agent_id"],
                    ", ".join(i["approvers"]),
                    _short(i["content_digest"], 19),
                    _short(i["content"]),
                ]
                for i in items
            ],
            ["task", "title", "agent", "approvers", "content sha256", "result (--full: whole)"],
        )
    session.emit(items, text)


async def _whole(pool: asyncpg.Pool, item: dict[str, Any]) -> Any:
    if item["content_url"] is None:
        return item["content"]
    try:
        return await resolve(pool, item["result"])
    except UnresolvedReference as exc:
        return f"(unreadable: {exc})"


def _shown_whole(item: dict[str, Any]) -> str:
    content = item["content"]
    text = content if isinstance(content, str) else json.dumps(content, indent=2)
    return (
        f"== {item['goal_id']}/{item['task_id']}: {item['title']}, by {item['agent_id']}; "
        f"approvers {', '.join(item['approvers'])}\n"
        f"content sha256 {item['content_digest'] or 'unknown'}\n\n{text}"
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
