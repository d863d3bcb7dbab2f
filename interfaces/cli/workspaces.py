"""`workspace token-rate|token-rates`: a workspace's tokens-per-minute limit of a model
provider, which all its agents share wherever they run (store/token_rates.py)."""

import argparse

import asyncpg

from interfaces.cli.commands import Command, Commands
from interfaces.cli.session import EXIT_USAGE, CliError, Session, table
from store.token_rates import (
    MAX_TOKENS_PER_MINUTE,
    RateRefused,
    TokenRate,
    clear_token_rate,
    set_token_rate,
    token_rates,
)


def add_commands(commands: Commands, command: Command) -> None:
    workspace = commands.add_parser(
        "workspace", help="what a workspace's agents share"
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    rate = command(
        workspace,
        "token-rate",
        "set (or --clear) the tokens a minute of a model provider that a workspace's agents share",
        set_rate,
    )
    rate.add_argument("workspace")
    rate.add_argument("provider", help="as pydantic-ai names it: openai, anthropic, google-gla...")
    rate.add_argument(
        "tokens_per_minute", nargs="?", type=tokens_per_minute, metavar="TOKENS_PER_MINUTE"
    )
    rate.add_argument("--clear", action="store_true", help="lift the limit instead")
    command(workspace, "token-rates", "the token rates set", show_rates).add_argument(
        "--workspace", help="only this workspace"
    )


def tokens_per_minute(text: str) -> int:
    """Parse TOKENS_PER_MINUTE: a whole number from 1 up."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of tokens a minute, got {text!r}"
        ) from None
    if not 1 <= value <= MAX_TOKENS_PER_MINUTE:
        raise argparse.ArgumentTypeError(
            f"expected 1 to {MAX_TOKENS_PER_MINUTE} tokens a minute, got {value}"
        )
    return value


async def set_rate(session: Session, args: argparse.Namespace) -> None:
    """Set or lift a workspace's shared limit on a provider's tokens a minute."""
    if args.clear == (args.tokens_per_minute is not None):
        raise CliError(
            "give TOKENS_PER_MINUTE to set the limit, or --clear to lift it (not both)", EXIT_USAGE
        )
    pool = await session.pool()
    try:
        if args.clear:
            cleared = await clear_token_rate(pool, args.workspace, args.provider)
            session.emit(
                {"workspace": args.workspace, "provider": args.provider, "cleared": cleared},
                f"workspace {args.workspace}: no limit on {args.provider} tokens now"
                + ("" if cleared else " (none was set)"),
            )
            return
        rate = await set_token_rate(pool, args.workspace, args.provider, args.tokens_per_minute)
    except RateRefused as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    except asyncpg.UndefinedTableError:
        raise CliError("no token rates in this database yet: start a worker once") from None
    session.emit(
        rate.to_json(),
        f"workspace {rate.workspace}: its agents share {rate.tokens_per_minute:,} tokens a "
        f"minute of {rate.provider}",
    )


async def show_rates(session: Session, args: argparse.Namespace) -> None:
    """The token rates set, by workspace and provider."""
    try:
        rates = await token_rates(await session.pool(), args.workspace)
    except asyncpg.UndefinedTableError:
        rates = []
    session.emit(
        [r.to_json() for r in rates],
        table([_row(r) for r in rates], ["workspace", "provider", "tokens a minute", "set at"])
        if rates
        else "no token rates set (starter.py workspace token-rate WORKSPACE PROVIDER N)",
    )


def _row(rate: TokenRate) -> list[object]:
    return [rate.workspace, rate.provider, f"{rate.tokens_per_minute:,}", rate.set_at]
