"""`suggestions [accept|dismiss ID]`: what Goalkeeper suggests after goals end, and decisions."""

import argparse

from activities.suggestions import decide_suggestion, list_suggestions
from goalkeeper.suggestions import InvalidSuggestionDecision, SuggestionStatus
from interfaces.cli.session import EXIT_USAGE, CliError, Session

STATUSES = [*(s.value for s in SuggestionStatus), "all"]


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
