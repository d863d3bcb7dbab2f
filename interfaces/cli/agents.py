"""`agent register|list|role` and `report`: the registry, agents' PostgreSQL logins, and an
agent's report sent by hand."""

import argparse
import json
import os
import secrets
from dataclasses import asdict
from typing import Any

from activities.database import (
    AGENT_ROLE,
    LOGIN_CAPACITY_LIMIT,
    InvalidAgentLogin,
    agent_login,
    create_agent_login,
    drop_agent_login,
    grant_workspaces,
    login_url,
    login_workspaces,
)
from goalkeeper.learning import AgentRecord
from goalkeeper.masking import mask_url
from goalkeeper.models import TaskView
from goalkeeper.statuses import TaskStatus
from interfaces.agents import registry
from interfaces.cli.session import EXIT_USAGE, CliError, Session, table
from interfaces.cli.tasks import require_open, send_update, task_view
from interfaces.stack import database_url


async def register(session: Session, args: argparse.Namespace) -> None:
    skills = [s.strip() for s in args.skills.split(",") if s.strip()]
    config = agent_config(args.config)
    try:
        await registry.register_agent(
            await session.pool(), args.agent_id, args.workspace, skills, args.capacity, config
        )
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    except registry.RegistrationRefused as exc:
        raise CliError(str(exc)) from exc
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


async def new_role(session: Session, args: argparse.Namespace) -> None:
    """Make a PostgreSQL login for agents of the given workspaces and print its DATABASE_URL
    once: PostgreSQL keeps only a verifier of the password, so it cannot be shown again."""
    workspaces = args.workspaces or []
    if not workspaces:
        raise CliError(
            f"expected one or more --workspace W: the workspaces login {args.name}'s agents "
            "serve (it registers and claims agents there only), got none",
            EXIT_USAGE,
        )
    given = args.password_env
    password = os.environ.get(given, "") if given else secrets.token_urlsafe(24)
    if given and len(password) < 16:
        raise CliError(
            f"{given} must hold the login's password, at least 16 characters; got {len(password)}",
            EXIT_USAGE,
        )
    pool = await session.pool()
    try:
        await create_agent_login(pool, args.name, password, workspaces)
    except InvalidAgentLogin as exc:
        if not (args.if_missing and await agent_login(pool, args.name)):
            raise CliError(str(exc), EXIT_USAGE) from exc
        served = await grant_workspaces(pool, args.name, workspaces)
        session.emit(
            {"login": args.name, "created": False, "workspaces": served},
            f"login {args.name} exists already; left as it is, serving workspaces "
            f"{', '.join(served)}",
        )
        return
    url = login_url(database_url(session.settings, start=False), args.name, password)
    if given:  # the password is in the caller's environment: never print it
        url = mask_url(url)
    session.emit(
        {"login": args.name, "database_url": url, "workspaces": workspaces},
        f"{url}\nlogin {args.name} may act for the agents it registers ({AGENT_ROLE}) in "
        f"workspaces {', '.join(workspaces)}, each with a capacity of at most "
        f"{LOGIN_CAPACITY_LIMIT}; keep this URL now, it is not shown again. Run agents with "
        "it: DATABASE_URL=URL python agent.py --workspace W ... (change the host if they run "
        "elsewhere).",
    )


async def grant_role(session: Session, args: argparse.Namespace) -> None:
    """Let an agents' login serve more workspaces (or some, if it was made without)."""
    try:
        served = await grant_workspaces(await session.pool(), args.name, args.workspaces)
    except InvalidAgentLogin as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    session.emit(
        {"login": args.name, "workspaces": served},
        f"login {args.name} serves workspaces {', '.join(served)}",
    )


async def list_roles(session: Session, args: argparse.Namespace) -> None:
    """Agents' logins and the workspaces each serves."""
    logins = await login_workspaces(await session.pool())
    session.emit(
        [{"login": login, "workspaces": served} for login, served in logins.items()],
        table(
            [[login, ", ".join(served) or "none: grant some"] for login, served in logins.items()],
            ["login", "workspaces"],
        ),
    )


async def drop_role(session: Session, args: argparse.Namespace) -> None:
    """Drop an agents' login: it connects no more and its open connections may do nothing."""
    try:
        await drop_agent_login(await session.pool(), args.name)
    except InvalidAgentLogin as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    session.emit(
        {"login": args.name, "dropped": True},
        f"login {args.name} dropped; the agents it registered keep its name, so only a new "
        "login of that name may speak for them",
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
