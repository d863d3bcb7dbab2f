"""`agent register --a2a` and `agent answer`: A2A agents joining a team, and their questions."""

import argparse
import json
from pathlib import Path
from typing import Any

from interfaces.agents import registry
from interfaces.cli.commands import Command, Commands
from interfaces.cli.session import EXIT_USAGE, CliError, Session


def add_commands(agent: Commands, command: Command) -> None:
    answering = command(
        agent, "answer", "answer the question an A2A agent asks on a task, as an approver", answer
    )
    answering.add_argument("goal_id")
    answering.add_argument("task_id")
    answering.add_argument("text", help="the answer, sent to the agent's A2A task")
    answering.add_argument("--as", dest="approver", required=True, help="who answers")


async def register(session: Session, args: argparse.Namespace) -> None:
    """Register the A2A agent at `args.a2a` from its card, taking its skills."""
    from interfaces.a2a import member  # the A2A SDK is loaded here, not for every command
    from interfaces.a2a.cards import CardRefused

    if args.skills:
        raise CliError("--skills and --a2a exclude each other: the card's skills are taken")
    pinned = _pinned_key(args.card_key) if args.card_key else None
    try:
        card = await member.register(
            await session.pool(),
            args.agent_id,
            args.a2a,
            args.workspace,
            args.capacity,
            pinned,
            session.settings.a2a_reach,
        )
    except CardRefused as exc:
        raise CliError(str(exc)) from exc
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    except registry.RegistrationRefused as exc:
        raise CliError(str(exc)) from exc
    signed = "signed, verified" if card.signed else "unsigned"
    session.emit(
        {
            "agent_id": args.agent_id,
            "workspace": args.workspace,
            "skills": card.skills,
            "a2a": card.url,
            "signed": card.signed,
        },
        f"registered A2A agent {args.agent_id} ({card.card.name}, card {signed}) in workspace "
        f"{args.workspace} ({', '.join(card.skills)}); serve it with "
        f"'python agent.py --a2a-bridge --workspace {args.workspace}'",
    )


def _pinned_key(path: str) -> dict[str, Any]:
    try:
        key = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise CliError(f"--card-key must name a JWK file, got {path!r}: {exc}", EXIT_USAGE) from exc
    if not isinstance(key, dict):
        raise CliError(f"--card-key must hold a JWK (a JSON object), got {path!r}", EXIT_USAGE)
    return key


async def answer(session: Session, args: argparse.Namespace) -> None:
    """Answer an A2A agent's open question on a task; only the task's approvers may."""
    from interfaces.a2a.questions import AnswerRefused, answer_question

    try:
        row = await answer_question(
            await session.pool(), args.goal_id, args.task_id, args.text, args.approver
        )
    except AnswerRefused as exc:
        usage = exc.kind in ("too_long", "no_task")
        raise CliError(str(exc), EXIT_USAGE if usage else 1) from exc
    session.emit(
        {"question_id": str(row["question_id"]), "question": row["question"], "answer": args.text},
        f"answered {row['agent_id']}'s question on {args.goal_id}/{args.task_id}: "
        f"{row['question']!r}",
    )
