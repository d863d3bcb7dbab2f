"""The parser and dispatcher of `starter.py`; each command lives in its own module."""

import argparse
import asyncio
import signal
import sys

from temporalio.client import WorkflowQueryFailedError
from temporalio.service import RPCError

from interfaces.cli import (
    agents,
    approvals,
    budgets,
    codec,
    costs,
    demo,
    events,
    feedback,
    goals,
    health,
    keys,
    reports,
    requests,
    runbooks,
    schema,
    secret,
    serve,
    stack,
    suggestions,
    task_controls,
    tokens,
    workspaces,
)
from interfaces.cli.commands import CommandModule, Commands, Run
from interfaces.cli.session import EXIT_FAILED, EXIT_UNREACHABLE, EXIT_USAGE, CliError, Session
from interfaces.client import TemporalUnreachable
from interfaces.config import Settings
from interfaces.stack import StackError
from interfaces.telemetry import TelemetryError, hide_secrets, masked

DESCRIPTION = """Goalkeeper: goals for teams of AI agents, on Temporal.

exit codes: 0 success; 1 the goal, task or request failed; 2 bad usage or input;
3 Temporal or PostgreSQL unreachable. Add --json to any command for scripts."""


COMMAND_MODULES: tuple[CommandModule, ...] = (
    stack,
    demo,
    requests,
    goals,
    approvals,
    task_controls,
    agents,
    schema,
    runbooks,
    costs,
    feedback,
    suggestions,
    budgets,
    workspaces,
    health,
    serve,
    tokens,
    codec,
    secret,
    reports,
    keys,
    events,
)
"""Every module with commands, in the order `starter.py --help` lists them."""


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON for scripts")
    top = argparse.ArgumentParser(
        prog="starter.py",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(group: Commands, name: str, help: str, run: Run) -> argparse.ArgumentParser:
        sub = group.add_parser(name, help=help, description=help, parents=[common])
        sub.set_defaults(run=run)
        return sub

    for module in COMMAND_MODULES:
        module.add_commands(commands, command)
    return top


async def _run(session: Session, args: argparse.Namespace) -> None:
    try:
        await args.run(session, args)
    finally:
        await session.close()


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    hide_secrets()  # in the logs of the dashboard and the demo, and in any traceback
    # SIGTERM unwinds like Ctrl-C, so the demo stops what it started; Ctrl-C itself works
    # even where the parent left it ignored (a child inherits that, and Python keeps it).
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        session = Session(Settings.from_env(), as_json=args.json)
    except ValueError as exc:
        print(f"error: {masked(exc)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.run is stack.up:
            stack.up(session, args)
        else:
            asyncio.run(_run(session, args))
    except (TemporalUnreachable, StackError) as exc:
        print(f"error: {masked(exc)}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except TelemetryError as exc:
        print(f"error: {masked(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except CliError as exc:
        print(f"error: {masked(exc)}", file=sys.stderr)
        return exc.exit_code
    except (WorkflowQueryFailedError, RPCError) as exc:
        # A workflow whose workflow task keeps failing (a deploy that broke determinism)
        # cannot answer queries either; the watch says which and what to do.
        print(
            f"error: Temporal could not answer: {masked(exc)}; "
            "`python starter.py health` says what is wrong and what to do",
            file=sys.stderr,
        )
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    return session.exit_code
