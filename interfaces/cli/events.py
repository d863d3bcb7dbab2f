"""`events GOAL`: a goal's audit trail from the read model, refused messages included."""

import argparse

from interfaces.cli.commands import Command, Commands
from interfaces.cli.session import EXIT_USAGE, CliError, Session
from store.events import trail


def add_commands(commands: Commands, command: Command) -> None:
    listing = command(commands, "events", "a goal's audit trail, newest last", events)
    listing.add_argument("goal_id")
    listing.add_argument("--limit", type=int, default=50, help="newest N events (50)")
    listing.add_argument("--kind", help="only events of this kind (e.g. report_rejected)")
    listing.add_argument("--before", type=int, help="events before this seq (the previous page)")


async def events(session: Session, args: argparse.Namespace) -> None:
    if args.limit < 1:
        raise CliError(f"expected --limit of at least 1, got {args.limit}", EXIT_USAGE)
    pool = await session.pool()
    rows = await trail(pool, args.goal_id, args.limit, args.kind, args.before)
    if not rows and not await pool.fetchval(
        "SELECT EXISTS (SELECT 1 FROM goals WHERE goal_id = $1) "
        "OR EXISTS (SELECT 1 FROM events WHERE goal_id = $1)",
        args.goal_id,
    ):
        raise CliError(f"no goal {args.goal_id!r} in the read model", EXIT_USAGE)
    if not rows:
        what = f"{args.kind} events" if args.kind else "events"
        session.emit(rows, f"goal {args.goal_id} has no {what}" + _before(args.before))
        return
    lines = [
        f"{r['seq']:>8}  {r['created_at']:%Y-%m-%d %H:%M:%S}  {r['kind']}  "
        + (f"[{r['task_id']}] " if r["task_id"] else "")
        + r["message"]
        for r in rows
    ]
    if len(rows) == args.limit:
        lines.append(f"(earlier events: --before {rows[0]['seq']})")
    session.emit(rows, "\n".join(lines))


def _before(seq: int | None) -> str:
    return f" before seq {seq}" if seq is not None else ""
