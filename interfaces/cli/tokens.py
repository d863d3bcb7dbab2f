"""`token new|list|revoke`: personal tokens for the HTTP API and the dashboard, each for
the workspaces it names."""

import argparse

from interfaces.cli.commands import Command, Commands
from interfaces.cli.session import EXIT_USAGE, CliError, Session, table
from store.tokens import InvalidToken, list_tokens, new_token, revoke_token


def add_commands(commands: Commands, command: Command) -> None:
    token = commands.add_parser(
        "token", help="personal tokens for the HTTP API and dashboard"
    ).add_subparsers(dest="token_command", required=True, metavar="ACTION")
    minting = command(token, "new", "make a token and print it once", new)
    minting.add_argument("--as", dest="person", required=True, help="whom the token acts as")
    minting.add_argument(
        "--workspace",
        dest="workspaces",
        action="append",
        default=[],
        metavar="W",
        help="a workspace the token may see and act in (repeat for more)",
    )
    minting.add_argument(
        "--all-workspaces", action="store_true", help="instead of --workspace: every workspace"
    )
    command(token, "list", "tokens: ids, persons, workspaces, created, revoked", listing)
    command(token, "revoke", "revoke a token by its id", revoke).add_argument(
        "token_id", help="TOKEN_ID from 'token list'"
    )


async def new(session: Session, args: argparse.Namespace) -> None:
    """Make a token and print it once: only its hash is kept, so it cannot be shown again."""
    try:
        row = await new_token(
            await session.pool(),
            args.person,
            args.workspaces,
            all_workspaces=args.all_workspaces,
        )
    except InvalidToken as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    session.emit(
        row,
        f"{row['token']}\ntoken {row['token_id']} acts as {row['person']} in {_scope(row)}; "
        "keep it now, it is not shown again. Send it as 'Authorization: Bearer TOKEN', or "
        "sign in with it on the dashboard.",
    )


async def listing(session: Session, args: argparse.Namespace) -> None:
    rows = await list_tokens(await session.pool())
    session.emit(
        rows,
        table(
            [
                [r["token_id"], r["person"], _scope(r), r["created_at"], r["revoked_at"] or ""]
                for r in rows
            ],
            ["token id", "person", "workspaces", "created", "revoked"],
        )
        if rows
        else "no tokens (starter.py token new --as NAME --workspace W)",
    )


def _scope(row: dict) -> str:
    if row["all_workspaces"]:
        return "all workspaces"
    return ", ".join(row["workspaces"])


async def revoke(session: Session, args: argparse.Namespace) -> None:
    try:
        row = await revoke_token(await session.pool(), args.token_id)
    except InvalidToken as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    session.emit(row, f"token {row['token_id']} of {row['person']} revoked at {row['revoked_at']}")
