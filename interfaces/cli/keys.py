"""`approver key new`, `agent rekey` and `sign`: the keys that prove who decided and who
reported, and signatures for people who use the `temporal` CLI."""

import argparse
import json
from typing import Any

from pydantic import ValidationError

from goalkeeper.controls import CONTROLS
from goalkeeper.models import ApprovalDecision, describe_validation_error
from goalkeeper.signing import InvalidKey, check_public_key, sign_control, sign_decision
from goalkeeper.statuses import Decision, TaskStatus
from interfaces.cli.commands import Command, Commands
from interfaces.cli.session import EXIT_USAGE, CliError, Session
from interfaces.cli.tasks import split_task_ref, task_view
from interfaces.keyring import KeyFileError, key_path, load_key, new_key
from store.keys import UnknownSigner, register_approver_key, rekey_agent


def add_commands(commands: Commands, command: Command) -> None:
    approver = commands.add_parser("approver", help="approvers' signing keys")
    approver_keys = approver.add_subparsers(dest="approver_command", required=True).add_parser(
        "key", help="an approver's key pair"
    )
    key_actions = approver_keys.add_subparsers(dest="key_command", required=True)
    made = command(key_actions, "new", "make and register an approver's key", new_approver_key)
    made.add_argument("--as", dest="approver", required=True, help="the approver's name")
    made.add_argument("--replace", action="store_true", help="replace a key this machine has")
    signing = command(
        commands, "sign", "print a signed decision or goal change for the temporal CLI", sign
    )
    signing.add_argument(
        "target",
        help="GOAL_ID/TASK_ID for a decision or --control reassign|cancel, else GOAL_ID",
    )
    signing.add_argument("--decision", choices=[d.value for d in Decision])
    changes = sorted(set(CONTROLS) - {"retry"})  # a retry is signed as a --decision
    signing.add_argument("--control", choices=changes, help="a change to a goal")
    signing.add_argument("--as", dest="approver", required=True, help="who signs (added_by)")
    signing.add_argument("--comment", default="", help="why (add_tasks: its reason)")
    signing.add_argument("--usd", type=float, help="raise_budget: the new USD budget")
    signing.add_argument("--tokens", type=int, help="raise_budget: the new token budget")
    signing.add_argument("--tasks", help="add_tasks: the tasks, a JSON list, each with its id")
    signing.add_argument(
        "--agent-key", action="store_true", help="sign with the agent key of --as (add_tasks)"
    )
    signing.add_argument("--agent", help="reassign: the agent to take the task")


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
    """Print a signed message for the `temporal` CLI: a decision on a task's result, a
    retry decision on a failed task, or a change to a goal (`--control`)."""
    key = load_key("agent" if args.agent_key else "approver", args.approver)
    if key is None:
        kind = "agent" if args.agent_key else "approver"
        how = (
            f"'starter.py approver key new --as {args.approver}'"
            if kind == "approver"
            else ("agent.py, which registers it")
        )
        raise CliError(f"no key for {kind} {args.approver!r} here; make one with {how}", EXIT_USAGE)
    if args.control in ("reassign", "cancel"):
        goal_id, name = split_task_ref(args.target)[0], args.control
        payload = await task_payload(session, args)
        payload["signature"] = sign_control(key, name, goal_id, CONTROLS[name](**payload))
        workflow_id, name = goal_id, f"{args.control}_task"
    elif args.control:
        goal_id, name, payload = args.target, args.control, control_payload(args)
        payload["signature"] = sign_control(key, name, goal_id, CONTROLS[name](**payload))
        workflow_id = goal_id
    else:
        if not args.decision:
            raise CliError("expected --decision (on a task) or --control (on a goal)", EXIT_USAGE)
        view = await task_view(session, args.target)
        payload = {"approver": args.approver, "decision": args.decision, "comment": args.comment}
        if view.status is TaskStatus.FAILED:  # a retry decision, sent to the goal
            payload |= {"task_id": view.task_id, "attempt": view.attempts}
            decision = ApprovalDecision.model_validate(payload)
            payload["signature"] = sign_control(key, "retry", view.goal_id, decision)
            workflow_id, name = view.goal_id, "decide"
        else:
            payload["signature"] = sign_decision(key, view, payload)
            workflow_id, name = args.target, "decide"
    text = json.dumps(payload)
    session.emit(
        payload,
        f"{text}\n\ntemporal workflow update execute --workflow-id {workflow_id} --name {name} "
        f"--input '{text}'",
    )


def control_payload(args: argparse.Namespace) -> dict[str, Any]:
    """The request of `sign --control` from its options, checked as the goal checks it."""
    if args.control == "add_tasks":
        try:
            tasks = json.loads(args.tasks or "")
        except json.JSONDecodeError as exc:
            raise CliError(
                f"--tasks: expected a JSON list of tasks, got {exc}", EXIT_USAGE
            ) from exc
        payload = {"tasks": tasks, "added_by": args.approver, "reason": args.comment}
    else:
        payload = {"approver": args.approver, "comment": args.comment}
        if args.control == "raise_budget":
            payload |= {"usd": args.usd, "tokens": args.tokens}
    try:
        CONTROLS[args.control].model_validate(payload)
    except ValidationError as exc:
        raise CliError(describe_validation_error(exc, args.control), EXIT_USAGE) from exc
    return payload


async def task_payload(session: Session, args: argparse.Namespace) -> dict[str, Any]:
    """The request of `sign --control reassign|cancel` on the task named, checked as the
    goal checks it; a reassign names the assignment it takes away, so it counts once."""
    _, task_id = split_task_ref(args.target)
    payload: dict[str, Any] = {"task_id": task_id, "approver": args.approver}
    payload["comment"] = args.comment
    if args.control == "reassign":
        view = await task_view(session, args.target)
        payload |= {"agent": args.agent, "assignment_id": view.assignment_id}
    try:
        CONTROLS[args.control].model_validate(payload)
    except ValidationError as exc:
        raise CliError(describe_validation_error(exc, args.control), EXIT_USAGE) from exc
    return payload


def signed(approver: str, kind: str, goal_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    """`payload` signed with this machine's key for `approver`, if it has one: a goal that
    requires signatures takes a change only so."""
    key = load_key("approver", approver)
    if key is None:
        return payload
    request = CONTROLS[kind].model_validate(payload)
    return payload | {"signature": sign_control(key, kind, goal_id, request)}
