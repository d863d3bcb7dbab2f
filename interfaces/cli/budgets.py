"""`budget raise|stop|set|show`: a goal's budget decided by its approvers, a workspace's
monthly budget set by an operator."""

import argparse
import uuid
from typing import Any

from goalkeeper.models import Progress
from goalkeeper.records import EventKind
from interfaces.cli.commands import Command, Commands
from interfaces.cli.goals import describe_progress, goal_handle
from interfaces.cli.keys import signed
from interfaces.cli.session import EXIT_USAGE, CliError, Session, table
from interfaces.cli.tasks import send_update


def add_commands(commands: Commands, command: Command) -> None:
    budget = commands.add_parser("budget", help="goals' and workspaces' budgets").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    raising = command(budget, "raise", "raise a goal's budget (its approvers)", raise_budget)
    raising.add_argument("goal_id")
    raising.add_argument("--usd", type=float, help="the new budget in USD")
    raising.add_argument("--tokens", type=int, help="the new budget in tokens")
    raising.add_argument("--as", dest="approver", required=True, help="approver name")
    raising.add_argument("--comment", default="", help="why")
    stopping = command(budget, "stop", "stop a goal: running tasks aborted, the rest skipped", stop)
    stopping.add_argument("goal_id")
    stopping.add_argument("--as", dest="approver", required=True, help="approver name")
    stopping.add_argument("--comment", default="", help="why")
    setting = command(budget, "set", "set a workspace's monthly budget", set_workspace)
    setting.add_argument("--workspace", required=True, help="the workspace")
    setting.add_argument("--usd", type=float, help="monthly budget in USD")
    setting.add_argument("--tokens", type=int, help="monthly budget in tokens")
    setting.add_argument("--as", dest="approver", default="operator", help="who sets it")
    command(budget, "show", "workspaces' monthly budgets and spend", show).add_argument(
        "--workspace", help="only this workspace"
    )


async def raise_budget(session: Session, args: argparse.Namespace) -> None:
    """Raise a goal's budget as one of its approvers; a paused goal goes on."""
    _require_amount(args)
    await goal_handle(session, args.goal_id)
    payload: dict[str, Any] = {"approver": args.approver, "comment": args.comment}
    if args.usd is not None:
        payload["usd"] = args.usd
    if args.tokens is not None:
        payload["tokens"] = args.tokens
    payload = signed(args.approver, "raise_budget", args.goal_id, payload)
    after = Progress.model_validate(
        await send_update(session, args.goal_id, "raise_budget", payload)
    )
    session.emit(
        after.model_dump(mode="json"),
        f"{args.approver} raised the budget of {args.goal_id}; it is {after.stage}\n"
        + describe_progress(after),
    )


async def stop(session: Session, args: argparse.Namespace) -> None:
    """Stop a goal as one of its approvers: running tasks are aborted, the rest skipped."""
    await goal_handle(session, args.goal_id)
    payload = signed(
        args.approver, "stop", args.goal_id, {"approver": args.approver, "comment": args.comment}
    )
    after = Progress.model_validate(await send_update(session, args.goal_id, "stop", payload))
    session.emit(
        after.model_dump(mode="json"), f"{args.approver} stopped {args.goal_id}: {after.stage}"
    )


async def set_workspace(session: Session, args: argparse.Namespace) -> None:
    """Set a workspace's monthly budget; its goals paused by it go on at their next look."""
    _require_amount(args)
    pool = await session.pool()
    async with pool.acquire() as connection, connection.transaction():
        row = await connection.fetchrow(
            """
            INSERT INTO workspace_budgets AS b (workspace, monthly_usd, monthly_tokens, set_by,
                                                spent_usd, spent_tokens)
            SELECT $1, $2, $3, $4, coalesce(sum(a.cost_usd), 0), coalesce(sum(a.tokens_used), 0)
            FROM assignments a JOIN goals g ON g.goal_id = a.goal_id
            WHERE g.workspace = $1 AND a.ended_at >= date_trunc('month', now())
            ON CONFLICT (workspace) DO UPDATE SET
                monthly_usd = EXCLUDED.monthly_usd, monthly_tokens = EXCLUDED.monthly_tokens,
                set_by = EXCLUDED.set_by, set_at = now(), alerted = false
            RETURNING b.*
            """,
            args.workspace,
            args.usd,
            args.tokens,
            args.approver,
        )
        assert row is not None
        await connection.execute(
            "UPDATE alerts SET resolved_at = now() "
            "WHERE kind = 'workspace_budget' AND subject LIKE $1 || ' %' AND resolved_at IS NULL",
            args.workspace,
        )
        await connection.execute(
            "SELECT goalkeeper_event($1)",
            {
                "event_id": str(uuid.uuid4()),
                "kind": EventKind.BUDGET_SET.value,
                "message": f"{args.approver!r} set the monthly budget of workspace "
                f"{args.workspace!r}: {_amounts(row)}",
                "detail": {"workspace": args.workspace, "by": args.approver},
            },
        )
    session.emit(
        _budget_json(row),
        f"workspace {args.workspace}: monthly budget {_amounts(row)}; "
        f"spent this month ${float(row['spent_usd']):.4f}, {row['spent_tokens']} tokens",
    )


async def show(session: Session, args: argparse.Namespace) -> None:
    """Workspaces' monthly budgets with this month's spend."""
    rows = await (await session.pool()).fetch(
        "SELECT * FROM workspace_budgets WHERE $1::text IS NULL OR workspace = $1 "
        "ORDER BY workspace",
        args.workspace,
    )
    session.emit(
        [_budget_json(r) for r in rows],
        table(
            [
                [
                    r["workspace"],
                    _amounts(r),
                    f"${float(r['spent_usd']):.4f}",
                    r["spent_tokens"],
                    r["month"],
                    r["set_by"],
                ]
                for r in rows
            ],
            ["workspace", "monthly budget", "spent", "tokens", "month", "set by"],
        )
        if rows
        else "no workspace budgets set (starter.py budget set --workspace W --usd N)",
    )


def _require_amount(args: argparse.Namespace) -> None:
    if args.usd is None and args.tokens is None:
        raise CliError("give --usd N, --tokens N, or both", EXIT_USAGE)
    for flag, value in (("--usd", args.usd), ("--tokens", args.tokens)):
        if value is not None and value <= 0:
            raise CliError(f"{flag} must be above 0, got {value}", EXIT_USAGE)


def _amounts(row: Any) -> str:
    parts = []
    if row["monthly_usd"] is not None:
        parts.append(f"${float(row['monthly_usd']):.2f}")
    if row["monthly_tokens"] is not None:
        parts.append(f"{row['monthly_tokens']:,} tokens")
    return " and ".join(parts)


def _budget_json(row: Any) -> dict[str, Any]:
    return {
        "workspace": row["workspace"],
        "monthly_usd": None if row["monthly_usd"] is None else float(row["monthly_usd"]),
        "monthly_tokens": row["monthly_tokens"],
        "month": str(row["month"]),
        "spent_usd": float(row["spent_usd"]),
        "spent_tokens": row["spent_tokens"],
        "set_by": row["set_by"],
    }
