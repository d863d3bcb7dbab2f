"""`agent register|list` and `report`: the registry, and an agent's report sent by hand."""

import argparse

from goalkeeper.models import TaskView
from goalkeeper.statuses import TaskStatus
from interfaces.agents import registry
from interfaces.cli.session import EXIT_USAGE, CliError, Session, table
from interfaces.cli.tasks import require_open, send_update, task_view


async def register(session: Session, args: argparse.Namespace) -> None:
    skills = [s.strip() for s in args.skills.split(",") if s.strip()]
    try:
        await registry.register_agent(
            await session.pool(), args.agent_id, args.workspace, skills, args.capacity
        )
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    session.emit(
        {"agent_id": args.agent_id, "workspace": args.workspace, "skills": skills},
        f"registered agent {args.agent_id} in workspace {args.workspace} ({', '.join(skills)})",
    )


async def list_agents(session: Session, args: argparse.Namespace) -> None:
    rows = await registry.list_agents(await session.pool(), args.workspace)
    session.emit(
        [dict(r) for r in rows],
        table(
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
        ),
    )


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
