"""`agent register|list` and `report`: the registry, and an agent's report sent by hand."""

import argparse
import json
from dataclasses import asdict
from typing import Any

from goalkeeper.learning import AgentRecord
from goalkeeper.models import TaskView
from goalkeeper.statuses import TaskStatus
from interfaces.agents import registry
from interfaces.cli.session import EXIT_USAGE, CliError, Session, table
from interfaces.cli.tasks import require_open, send_update, task_view


async def register(session: Session, args: argparse.Namespace) -> None:
    skills = [s.strip() for s in args.skills.split(",") if s.strip()]
    config = agent_config(args.config)
    try:
        await registry.register_agent(
            await session.pool(), args.agent_id, args.workspace, skills, args.capacity, config
        )
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    session.emit(
        {"agent_id": args.agent_id, "workspace": args.workspace, "skills": skills}
        | ({"config": config} if config is not None else {}),
        f"registered agent {args.agent_id} in workspace {args.workspace} ({', '.join(skills)})",
    )


def agent_config(text: str | None) -> dict[str, Any] | None:
    """`--config`: a JSON object, or None when not given."""
    if text is None:
        return None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"--config must be JSON, got {text!r}: {exc}", EXIT_USAGE) from exc
    if not isinstance(config, dict):
        raise CliError(f"--config must be a JSON object, got {text!r}", EXIT_USAGE)
    return config


async def list_agents(session: Session, args: argparse.Namespace) -> None:
    """Agents with their status and load, and each one's record per skill."""
    pool = await session.pool()
    rows = await registry.list_agents(pool, args.workspace)
    records = await registry.agent_records(pool, args.workspace)
    agents = [
        dict(r)
        | {
            "records": [
                {"skill": skill} | asdict(record) | record_figures(record)
                for skill, record in records.get(r["agent_id"], {}).items()
            ]
        }
        for r in rows
    ]
    listing = table(
        [
            [
                r["agent_id"],
                r["workspace"],
                r["status"],
                f"{r['active_assignments']}/{r['capacity']}",
                ", ".join(r["skills"]),
                "yes" if r["provisioned"] else "no",
            ]
            for r in rows
        ],
        ["agent", "workspace", "status", "load", "skills", "provisioned"],
    )
    kept = [
        (a["agent_id"], s, records[a["agent_id"]][s["skill"]]) for a in agents for s in a["records"]
    ]
    if kept:
        listing += "\n\nrecords (score: expected success, from successes and failures)\n" + table(
            [
                [
                    agent_id,
                    shown["skill"],
                    "-" if record.first_try_rate is None else f"{record.first_try_rate:.0%}",
                    f"{record.first_try_completions}/{record.first_tries}",
                    record.completions,
                    record.failures,
                    record.lapses,
                    record.reworks,
                    f"{record.ratings_good}/{record.ratings_bad}",
                    f"{record.posterior_mean:.2f}",
                ]
                for agent_id, shown, record in kept
            ],
            [
                "agent",
                "skill",
                "first try",
                "first tries",
                "completed",
                "failed",
                "lapsed",
                "reworked",
                "rated good/bad",
                "score",
            ],
        )
    session.emit(agents, listing)


def record_figures(record: AgentRecord) -> dict[str, Any]:
    """What a record comes to: the figures `agent list` shows beside its counts."""
    return {
        "first_try_rate": record.first_try_rate,
        "successes": record.successes,
        "failures_seen": record.failures_seen,
        "score": round(record.posterior_mean, 6),
    }


async def report(session: Session, args: argparse.Namespace) -> None:
    view = await task_view(session, args.task)
    require_open(view)
    if view.status is not TaskStatus.ASSIGNED:
        raise CliError(f"task {args.task} is not waiting for a report (it is {view.status})")
    payload = {
        "agent_id": args.agent or view.agent_id,
        "assignment_id": args.assignment or view.assignment_id,
        "outcome": args.outcome,
        "result": args.result,
        "error": args.error,
        "tokens_used": args.tokens,
        "cost_usd": args.cost,
    }
    after = TaskView.model_validate(await send_update(session, args.task, "report", payload))
    session.emit(
        after.model_dump(mode="json"), f"reported {args.outcome}; {args.task} is now {after.status}"
    )
