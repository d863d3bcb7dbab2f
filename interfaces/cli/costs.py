"""`costs`: what goals, tasks, agents, skills, runbooks or days cost, and what was wasted."""

import argparse

from goalkeeper.costs import CostReport, InvalidCostQuery, cost_query, share, spend_notes
from interfaces.cli.commands import Command, Commands
from interfaces.cli.session import EXIT_USAGE, CliError, Session, table
from store.costs import cost_report


def add_commands(commands: Commands, command: Command) -> None:
    spend = command(commands, "costs", "what the work cost, and what of it was wasted", costs)
    spend.add_argument("--goal", help="a goal and its sub-goals")
    spend.add_argument("--workspace", help="only this workspace")
    spend.add_argument(
        "--by", default="goal", help="goal|task|attempt|agent|skill|runbook|workspace|day (goal)"
    )
    spend.add_argument("--since", help="attempts from this day on, YYYY-MM-DD (UTC)")
    spend.add_argument("--limit", type=int, default=50, help="lines at most (50)")


async def costs(session: Session, args: argparse.Namespace) -> None:
    try:
        query = cost_query(
            goal_id=args.goal,
            workspace=args.workspace,
            by=args.by,
            since=args.since,
            limit=args.limit,
        )
        report = await cost_report(await session.pool(), query)
    except InvalidCostQuery as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    session.emit(report.model_dump(mode="json"), describe_costs(report))


def describe_costs(report: CostReport) -> str:
    """A cost report as a table with a totals line, for people."""
    if not report.lines:
        return "no attempts match: nothing has cost anything yet"
    total = report.total
    rows = [
        [
            line.key,
            line.attempts,
            line.tokens_used,
            f"{line.cost_usd:.4f}",
            f"{line.wasted_usd:.4f}",
            share(line.wasted_usd, line.cost_usd),
            line.wasted_attempts,
        ]
        for line in report.lines
    ]
    rows.append(
        [
            "total",
            total.attempts,
            total.tokens_used,
            f"{total.cost_usd:.4f}",
            f"{total.wasted_usd:.4f}",
            share(total.wasted_usd, total.cost_usd),
            total.wasted_attempts,
        ]
    )
    text = table(
        rows,
        [
            report.by.value,
            "attempts",
            "tokens",
            "cost_usd",
            "wasted_usd",
            "wasted%",
            "wasted_attempts",
        ],
    )
    if report.more_lines:
        text += f"\n({report.more_lines} more {report.by.value} lines in the total; see --limit)"
    return "\n".join([text, *spend_notes(total)])
