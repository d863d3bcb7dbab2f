"""`approver key new`, `agent rekey` and `sign`: the keys that prove who decided and who
reported, and signatures for people who use the `temporal` CLI."""

import argparse
import json

from activities.keys import UnknownSigner, register_approver_key, rekey_agent
from goalkeeper.signing import InvalidKey, check_public_key, sign_decision
from interfaces.cli.session import EXIT_USAGE, CliError, Session
from interfaces.cli.tasks import task_view
from interfaces.keyring import KeyFileError, key_path, load_key, new_key


async def new_approver_key(session: Session, args: argparse.Namespace) -> None:
    """Make an approver's key pair here and register its public key; the private key
    stays in this machine's key directory, readable by its owner alone."""
    try:
        _, public = new_key("approver", args.approver, replace=args.replace)
    except KeyFileError as exc:
        raise CliError(f"{exc}: pass --replace to make a new one", EXIT_USAGE) from exc
    pool = await session.pool()
    async with pool.acquire() as connection, connection.transaction():
        await register_approver_key(connection, args.approver, public)
    path = key_path("approver", args.approver)
    session.emit(
        {"approver": args.approver, "public_key": public, "key_file": str(path)},
        f"{args.approver}'s key is registered (public {public}); the private key is in "
        f"{path}; 'approve' and 'reject' sign with it",
    )


async def rekey(session: Session, args: argparse.Namespace) -> None:
    """Give an agent a new public key, as its operator: the one way to replace a key."""
    try:
        public = check_public_key(args.public_key)
    except InvalidKey as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    pool = await session.pool()
    try:
        async with pool.acquire() as connection, connection.transaction():
            await rekey_agent(connection, args.agent_id, public, args.operator)
    except UnknownSigner as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    session.emit(
        {"agent_id": args.agent_id, "public_key": public, "by": args.operator},
        f"agent {args.agent_id!r} now signs with {public} (set by {args.operator})",
    )


async def sign(session: Session, args: argparse.Namespace) -> None:
    """Print a decision, signed with this machine's key for the approver, as the `--input`
    of `temporal workflow update execute --name decide` (or signal approval_decision)."""
    key = load_key("approver", args.approver)
    if key is None:
        raise CliError(
            f"no key for approver {args.approver!r} here; make one with "
            f"'starter.py approver key new --as {args.approver}'",
            EXIT_USAGE,
        )
    view = await task_view(session, args.task)
    payload = {"approver": args.approver, "decision": args.decision, "comment": args.comment}
    payload["signature"] = sign_decision(key, view, payload)
    text = json.dumps(payload)
    session.emit(
        payload,
        f"{text}\n\ntemporal workflow update execute --workflow-id {args.task} --name decide "
        f"--input '{text}'",
    )
