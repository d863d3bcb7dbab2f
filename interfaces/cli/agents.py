"""`agent register|offline|list|role|rekey`: the registry, agents' PostgreSQL logins and keys."""

import argparse
import json
import os
import secrets
from dataclasses import asdict
from typing import Any

import asyncpg

from goalkeeper.learning import AgentRecord
from goalkeeper.masking import mask_url
from interfaces.agents import registry
from interfaces.cli import credentials, keys, members
from interfaces.cli.commands import Command, Commands
from interfaces.cli.session import EXIT_USAGE, CliError, Session, table
from interfaces.stack import database_url
from store.database import (
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


def add_commands(commands: Commands, command: Command) -> None:
    agent = commands.add_parser("agent", help="the agent registry").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    registering = command(agent, "register", "register (or bring back) an agent", register)
    registering.add_argument("agent_id")
    registering.add_argument("--skills", help="comma-separated skills (or --a2a's card's)")
    registering.add_argument("--a2a", metavar="URL", help="an A2A agent: its skills from its card")
    registering.add_argument("--card-key", help="a JWK file: the key its A2A card is signed with")
    registering.add_argument("--workspace", default="default", help="workspace (default)")
    registering.add_argument("--capacity", type=int, default=1, help="assignments at once (1)")
    registering.add_argument(
        "--config", help='what the agent works with, a JSON object, e.g. \'{"model": "m"}\''
    )
    command(
        agent,
        "offline",
        "take agents offline: they get no new work ('agent register' brings one back)",
        take_offline,
    ).add_argument("agent_ids", nargs="+", metavar="agent_id")
    command(
        agent, "list", "list agents with their status, load and record per skill", list_agents
    ).add_argument("--workspace", help="only this workspace")
    _add_role_commands(agent, command)
    members.add_commands(agent, command)
    credentials.add_commands(agent, command)
    replaced = command(agent, "rekey", "give an agent a new key, as its operator", keys.rekey)
    replaced.add_argument("agent_id")
    replaced.add_argument("--public-key", required=True, help="its new public key (base64)")
    replaced.add_argument("--as", dest="operator", required=True, help="who replaces it")


def _add_role_commands(agent: Commands, command: Command) -> None:
    logins = agent.add_parser(
        "role", help="agents' PostgreSQL logins", description="agents' PostgreSQL logins"
    ).add_subparsers(dest="role_action", required=True, metavar="ACTION")
    made = command(
        logins, "new", "make a login for agents and print its DATABASE_URL once", new_role
    )
    made.add_argument("name", help="the login's name (lowercase)")
    made.add_argument(
        "--workspace",
        dest="workspaces",
        action="append",
        metavar="W",
        help="a workspace its agents serve (repeat for more; at least one)",
    )
    made.add_argument(
        "--password-env", help="take its password from this variable (never printed) instead"
    )
    made.add_argument(
        "--if-missing",
        action="store_true",
        help="an agents' login of that name is fine (it is granted the workspaces)",
    )
    granting = command(logins, "grant", "let an agents' login serve more workspaces", grant_role)
    granting.add_argument("name")
    granting.add_argument(
        "--workspace", dest="workspaces", action="append", required=True, metavar="W"
    )
    command(logins, "list", "list agents' logins and their workspaces", list_roles)
    command(logins, "drop", "drop an agents' login", drop_role).add_argument("name")


async def register(session: Session, args: argparse.Namespace) -> None:
    if args.a2a:
        return await members.register(session, args)
    if not args.skills:
        raise CliError("expected --skills (or --a2a URL, whose card names them)", EXIT_USAGE)
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


async def take_offline(session: Session, args: argparse.Namespace) -> None:
    """Take agents offline, so no new task is given to them: an agent that nothing runs
    would otherwise take tasks and hold each until its report deadline. The assignments
    they hold stay theirs."""
    pool = await session.pool()
    wanted = list(dict.fromkeys(args.agent_ids))
    known = {
        row["agent_id"]: row["active_assignments"]
        for row in await pool.fetch(
            "SELECT agent_id, active_assignments FROM agents WHERE agent_id = ANY($1::text[])",
            wanted,
        )
    }
    if unknown := [a for a in wanted if a not in known]:
        raise CliError(f"no agent {', '.join(map(repr, unknown))} in the registry", EXIT_USAGE)
    try:
        await registry.take_offline(pool, wanted)
    except asyncpg.InsufficientPrivilegeError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    one = len(wanted) == 1
    text = (
        f"{', '.join(wanted)} {'is' if one else 'are'} offline: no new task goes to "
        f"{'it' if one else 'them'} until 'agent register' brings {'it' if one else 'them'} back"
    )
    if holding := [f"{a} ({known[a]})" for a in wanted if known[a]]:
        text += f"; assignments held still, until done or due: {', '.join(holding)}"
    session.emit(
        [{"agent_id": a, "status": "offline", "active_assignments": known[a]} for a in wanted],
        text,
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
