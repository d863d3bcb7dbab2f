"""`feedback GOAL [TASK]`: a person's rating and comment on a goal's or a task's work."""

import argparse

from goalkeeper.feedback import InvalidFeedback, feedback
from interfaces.cli.commands import Command, Commands
from interfaces.cli.session import EXIT_USAGE, CliError, Session
from store.feedback import give_feedback


def add_commands(commands: Commands, command: Command) -> None:
    rating = command(commands, "feedback", "rate a goal's or a task's work, with a comment", give)
    rating.add_argument("goal_id")
    rating.add_argument("task_id", nargs="?", help="a task of the goal (default: the goal)")
    rating.add_argument("--rating", type=int, help="1 (poor) to 5 (excellent)")
    rating.add_argument("--comment", default="", help="what was good or bad")
    rating.add_argument("--as", dest="person", required=True, help="who you are")


async def give(session: Session, args: argparse.Namespace) -> None:
    try:
        given = feedback(args.goal_id, args.task_id, args.person, args.rating, args.comment)
        row = await give_feedback(await session.pool(), given)
    except InvalidFeedback as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    about = f"{row['goal_id']}/{row['task_id']}" if row["task_id"] else row["goal_id"]
    by = f" (agent {row['agent_id']})" if row["agent_id"] else ""
    session.emit(
        row,
        f"{row['person']} rated {about}{by} {row['rating']} of 5; feedback {row['feedback_id']}",
    )
