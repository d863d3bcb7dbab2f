"""`agent credential new|list|revoke`: agents' own credentials for the HTTP agent
protocol, each bound to one agent and its workspace."""

import argparse

from interfaces.cli.commands import Command, Commands
from interfaces.cli.session import EXIT_USAGE, CliError, Session, table
from store.agent_credentials import (
    InvalidCredential,
    list_credentials,
    new_credential,
    revoke_credential,
)


def add_commands(agent: Commands, command: Command) -> None:
    credential = agent.add_parser(
        "credential",
        help="agents' credentials for the HTTP agent protocol",
        description="agents' credentials for the HTTP agent protocol (/api/v1/agent/)",
    ).add_subparsers(dest="credential_action", required=True, metavar="ACTION")
    command(credential, "new", "make an agent's credential and print it once", new).add_argument(
        "agent_id", help="a registered agent"
    )
    command(credential, "list", "credentials: ids, agents, created, revoked", listing).add_argument(
        "--agent", help="only this agent's"
    )
    command(credential, "revoke", "revoke a credential by its id", revoke).add_argument(
        "credential_id", help="CREDENTIAL_ID from 'agent credential list'"
    )


async def new(session: Session, args: argparse.Namespace) -> None:
    """Make a credential and print it once: only its hash is kept."""
    try:
        row = await new_credential(await session.pool(), args.agent_id)
    except InvalidCredential as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    session.emit(
        row,
        f"{row['credential']}\ncredential {row['credential_id']} acts for agent "
        f"{row['agent_id']} in workspace {row['workspace']}; keep it now, it is not shown "
        "again. The agent sends it as 'Authorization: Bearer CREDENTIAL' to /api/v1/agent/ "
        "(agent.py --api URL reads it from GOALKEEPER_AGENT_CREDENTIAL).",
    )


async def listing(session: Session, args: argparse.Namespace) -> None:
    rows = await list_credentials(await session.pool(), args.agent)
    session.emit(
        rows,
        table(
            [
                [r["credential_id"], r["agent_id"], r["created_at"], r["revoked_at"] or ""]
                for r in rows
            ],
            ["credential id", "agent", "created", "revoked"],
        )
        if rows
        else "no credentials (starter.py agent credential new AGENT)",
    )


async def revoke(session: Session, args: argparse.Namespace) -> None:
    try:
        row = await revoke_credential(await session.pool(), args.credential_id)
    except InvalidCredential as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    session.emit(row, f"revoked credential {row['credential_id']} of agent {row['agent_id']}")
