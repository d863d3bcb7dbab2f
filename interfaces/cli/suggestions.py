"""`suggestions [accept|dismiss ID]`: what Goalkeeper suggests after goals end, and decisions."""

import argparse

from goalkeeper.suggestions import InvalidSuggestionDecision, SuggestionStatus
from interfaces.cli.commands import Command, Commands
from interfaces.cli.session import EXIT_USAGE, CliError, Session
from store.suggestions import decide_suggestion, list_suggestions

STATUSES = [*(s.value for s in SuggestionStatus), "all"]


def add_commands(commands: Commands, command: Command) -> None:
    ideas = command(
        commands, "suggestions", "what could be done better, from goals that ended", listing
    )
    ideas.add_argument("--status", choices=STATUSES, default="open", help="(open)")
    ideas.add_argument("--limit", type=int, default=50, help="newest N (50)")
    deciding = ideas.add_subparsers(dest="action", metavar="ACTION")
    for name, run in (("accept", accept), ("dismiss", dismiss)):
        decide_on = command(deciding, name, f"{name} a suggestion", run)
        decide_on.add_argument("suggestion_id", help="its id, or the first 8 characters")
        decide_on.add_argument("--as", dest="person", required=True, help="who decides")
        decide_on.add_argument("--comment", default="", help="why")


async def listing(session: Session, args: argparse.Namespace) -> None:
    status = None if args.status == "all" else SuggestionStatus(args.status)
    rows = await list_suggestions(await session.pool(), status, args.limit)
    if not rows:
        session.emit(rows, f"no {'' if status is None else status.value + ' '}suggestions")
        return
    lines = []
    for r in rows:
        decided = f"  {r['status']} by {r['decided_by']}" if r["decided_by"] else ""
        lines.append(
            f"{r['suggestion_id'][:8]}  {r['kind']}  goal {r['goal_id']}{decided}\n"
            f"  {r['message']}\n  -> {r['action']}"
        )
    session.emit(rows, "\n".join(lines))


async def accept(session: Session, args: argparse.Namespace) -> None:
    await _decide(session, args, SuggestionStatus.ACCEPTED)


async def dismiss(session: Session, args: argparse.Namespace) -> None:
    await _decide(session, args, SuggestionStatus.DISMISSED)


async def _decide(session: Session, args: argparse.Namespace, status: SuggestionStatus) -> None:
    try:
        row = await decide_suggestion(
            await session.pool(), args.suggestion_id, status, args.person, args.comment
        )
    except InvalidSuggestionDecision as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    session.emit(
        row,
        f"{row['decided_by']} {row['status']} suggestion {row['suggestion_id']} "
        f"({row['kind']}): {row['action']}",
    )
