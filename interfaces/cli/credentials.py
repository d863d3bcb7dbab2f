"""`agent credential new|list|revoke`: agents' own credentials for the HTTP agent
protocol, each bound to one agent and its workspace."""

import argparse
import os
from pathlib import Path
from typing import Any

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
    made = command(credential, "new", "make an agent's credential and print it once", new)
    made.add_argument("agent_id", help="a registered agent")
    made.add_argument(
        "--into",
        type=Path,
        metavar="DIR",
        help="write it to DIR/AGENT.credential (owner-only) instead, for agent.py --credentials "
        "DIR; an agent with a file there already keeps it and gets no new credential",
    )
    command(credential, "list", "credentials: ids, agents, created, revoked", listing).add_argument(
        "--agent", help="only this agent's"
    )
    command(credential, "revoke", "revoke a credential by its id", revoke).add_argument(
        "credential_id", help="CREDENTIAL_ID from 'agent credential list'"
    )


async def new(session: Session, args: argparse.Namespace) -> None:
    """Make a credential and print it once (or write it to a file): only its hash is kept."""
    if args.into is not None:
        return await new_into(session, args.agent_id, args.into)
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


async def new_into(session: Session, agent_id: str, directory: Path) -> None:
    """Write a new credential to DIR/AGENT.credential, readable by its owner only, unless
    that file is there already: so a setup that runs on every start makes each once."""
    if not agent_id or "/" in agent_id or agent_id.startswith("."):
        raise CliError(f"expected a plain agent id for a file name, got {agent_id!r}", EXIT_USAGE)
    from interfaces.agents.over_http import CREDENTIAL_SUFFIX  # httpx and the runner: here

    path = directory / f"{agent_id}{CREDENTIAL_SUFFIX}"
    if _exists(path):
        session.emit(
            {"agent_id": agent_id, "path": str(path), "made": False},
            f"agent {agent_id} keeps its credential in {path}",
        )
        return
    try:
        row = await new_credential(await session.pool(), agent_id)
    except InvalidCredential as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    try:
        _write_owner_only(path, row["credential"] + "\n")
    except OSError as exc:  # the credential made is unused: revoke it, say why
        await revoke_credential(await session.pool(), row["credential_id"])
        raise CliError(f"cannot write {path}: {exc.strerror}") from exc
    session.emit(
        {"agent_id": agent_id, "path": str(path), "made": True} | _ids(row),
        f"credential {row['credential_id']} of agent {agent_id} written to {path} (owner-only); "
        f"serve it with 'agent.py --api URL --credentials {directory}'",
    )


def _ids(row: dict[str, Any]) -> dict[str, Any]:
    return {"credential_id": row["credential_id"], "workspace": row["workspace"]}


def _exists(path: Path) -> bool:
    return path.exists()


def _write_owner_only(path: Path, text: str) -> None:
    """Write a new file only its owner may read, in a directory only its owner may enter."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


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
