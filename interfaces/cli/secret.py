"""`worker-secret new`: the key that seals the messages between Goalkeeper's workflows."""

import argparse

from interfaces.cli.codec import print_new_entry
from interfaces.cli.commands import Command, Commands
from interfaces.cli.session import Session
from interfaces.secret import new_secret_entry


def add_commands(commands: Commands, command: Command) -> None:
    worker_secret = commands.add_parser(
        "worker-secret", help="the key that seals the messages between workflows"
    ).add_subparsers(dest="worker_secret_command", required=True, metavar="ACTION")
    command(worker_secret, "new", "make a key and print it once", new_secret).add_argument(
        "--id", help="its key id (default: today's date and 4 random hex digits)"
    )


async def new_secret(session: Session, args: argparse.Namespace) -> None:
    """Print a fresh key once, as the KEY_ID:BASE64 entry GOALKEEPER_WORKER_SECRET takes."""
    print_new_entry(
        session,
        args.id,
        new_secret_entry,
        "give it to every worker, and to nothing else, first in GOALKEEPER_WORKER_SECRET "
        "(NEW,OLD...); keep older keys after it while any workflow that received a message "
        "sealed with them runs.",
    )
