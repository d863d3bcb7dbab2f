"""The reference agent runner: simulated agents for demos and load, or your own agent.

    python agent.py --count 4 --skills data,writing
    python agent.py --skills writing --hook mypackage.agents:write      # a Python function
    python agent.py --skills data --command './my-agent.sh'             # a shell command
    python agent.py --a2a-bridge --workspace acme       # the workspace's A2A agents
    GOALKEEPER_AGENT_CREDENTIAL=gka_... python agent.py --api http://goalkeeper:8000

With --api, the agent its credential acts for (`starter.py agent credential new AGENT`),
or one agent per file of --credentials DIR, works over the HTTP agent protocol, holding
no database login and no route to Temporal; each signs with its key on this machine,
which it registers over HTTP the first time (an operator replaces it with `starter.py
agent rekey`). Otherwise agents register in PostgreSQL, wake on
their assignments through LISTEN/NOTIFY, and report by signalling their task workflow;
they read TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE and DATABASE_URL like the worker, and
DATABASE_URL should be an agents' login (`starter.py agent role new NAME`), which may act
only for its own agents. A worker creates the schema: agents wait for it. See
interfaces/agents/runner.py for the hook interface.
"""

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import asyncpg
from temporalio.client import Client

from goalkeeper.errors import GoalkeeperError
from goalkeeper.signing import public_key_of
from interfaces import telemetry
from interfaces.a2a.member import serve_members
from interfaces.agents import registry
from interfaces.agents.http_transport import CREDENTIAL_ENV
from interfaces.agents.over_http import Credential, credentials_in, serve_over_http
from interfaces.agents.runner import (
    AgentRunner,
    CommandHook,
    Hook,
    SimulatedWork,
    load_function_hook,
)
from interfaces.client import TemporalUnreachable, connect, exit_process
from interfaces.config import Settings
from interfaces.keyring import key_for
from interfaces.stack import database_url
from store.database import AGENT_ROLE, agent_access, create_pool

log = logging.getLogger("goalkeeper.agent")

SCHEMA_POLL_SECONDS = 2.0
"""How often agents look for the schema a worker creates."""
SCHEMA_NOTE_SECONDS = 30.0
"""How often they say, meanwhile, that they are waiting for it."""


def span(text: str, kind: type[float] | type[int]) -> tuple[float, float] | tuple[int, int]:
    """Parse `LOW-HIGH` (or one number) into a range."""
    low, _, high = text.partition("-")
    try:
        first, last = kind(low), kind(high or low)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW-HIGH, got {text!r}") from None
    if first < 0 or last < first:
        raise argparse.ArgumentTypeError(f"expected 0 <= LOW <= HIGH, got {text!r}")
    return first, last


def config_object(text: str) -> dict[str, Any]:
    """Parse `--config`: a JSON object."""
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"expected JSON, got {text!r}: {exc}") from None
    if not isinstance(config, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return config


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="agent.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=3, help="agents to run (default 3)")
    p.add_argument(
        "--skills",
        default="data,writing,analytics,sales",
        help="comma-separated skills every agent has",
    )
    p.add_argument("--workspace", default="default", help="workspace the agents serve")
    p.add_argument("--prefix", default="sim", help="agent ids are PREFIX-1, PREFIX-2, ...")
    p.add_argument("--first", type=int, default=1, help="number of the first agent (1)")
    p.add_argument("--capacity", type=int, default=1, help="assignments per agent at once")
    p.add_argument(
        "--operator",
        help="who runs these agents: they may not approve the agents' work (kept once set)",
    )
    p.add_argument(
        "--config",
        type=config_object,
        help="what the agents work with, a JSON object their hook reads (kept if not given)",
    )
    p.add_argument(
        "--adopt-provisioned",
        action="store_true",
        help="also do the work of agents Goalkeeper provisioned in the workspace",
    )
    http = p.add_argument_group("over HTTP (no PostgreSQL login, no Temporal)")
    http.add_argument("--api", metavar="URL", help="the Goalkeeper API, e.g. http://host:8000")
    http.add_argument(
        "--credential",
        help=f"the agent's credential (better: the {CREDENTIAL_ENV} environment variable)",
    )
    http.add_argument(
        "--credentials",
        type=Path,
        metavar="DIR",
        help="serve one agent per DIR/AGENT.credential ('agent credential new AGENT --into DIR')",
    )
    sim = p.add_argument_group("simulated work (when no --hook or --command is given)")
    sim.add_argument("--success-rate", type=float, default=0.9, help="chance an attempt succeeds")
    sim.add_argument(
        "--delay",
        type=lambda t: span(t, float),
        default=(0.5, 2.0),
        help="seconds per task, LOW-HIGH (default 0.5-2)",
    )
    sim.add_argument(
        "--tokens",
        type=lambda t: span(t, int),
        default=(200, 2000),
        help="tokens per task, LOW-HIGH (default 200-2000)",
    )
    sim.add_argument("--cost-per-1k-tokens", type=float, default=0.002, help="USD per 1k tokens")
    sim.add_argument("--seed", default="goalkeeper", help="same seed, same outcomes")
    real = p.add_mutually_exclusive_group()
    real.add_argument(
        "--a2a-bridge",
        action="store_true",
        help="serve the workspace's A2A agents ('starter.py agent register NAME --a2a URL')",
    )
    real.add_argument("--hook", help="module:function called with each assignment")
    real.add_argument("--command", help="shell command run with each assignment on stdin")
    return p


def hook_of(args: argparse.Namespace) -> Hook:
    if args.hook:
        return load_function_hook(args.hook)
    if args.command:
        return CommandHook(args.command)
    if not 0.0 <= args.success_rate <= 1.0:
        raise GoalkeeperError(f"--success-rate must be between 0 and 1, got {args.success_rate}")
    return SimulatedWork(
        success_rate=args.success_rate,
        delay=args.delay,
        tokens=args.tokens,
        cost_per_1k_tokens=args.cost_per_1k_tokens,
        seed=args.seed,
    )


async def run(args: argparse.Namespace) -> None:
    if args.api:
        await run_over_http(args)
        return
    settings = Settings.from_env()
    hook = hook_of(args)
    skills = [s.strip() for s in args.skills.split(",") if s.strip()]
    agent_ids = [f"{args.prefix}-{n}" for n in range(args.first, args.first + args.count)]
    client = await connect(settings, service="goalkeeper-agent")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    pool = await create_pool(database_url(settings, start=False), max_size=4)
    try:
        if not await wait_for_schema(pool, stop):
            return
        if args.a2a_bridge:
            await serve_members(client, pool, args.workspace, stop)
        else:
            await serve(args, client, pool, agent_ids, skills, hook, stop)
    finally:
        await pool.close()


async def run_over_http(args: argparse.Namespace) -> None:
    """Serve the credentials' agents over the HTTP agent protocol until stopped."""
    if args.credentials:
        credentials = credentials_in(args.credentials)
    elif credential := (args.credential or os.environ.get(CREDENTIAL_ENV, "")).strip():
        source = "--credential" if args.credential else CREDENTIAL_ENV
        credentials = [Credential(credential, source)]
    else:
        raise GoalkeeperError(
            f"--api needs agents' credentials: set {CREDENTIAL_ENV} (or --credential) to one "
            "from 'starter.py agent credential new AGENT', or give --credentials DIR"
        )
    hook = hook_of(args)
    # No Temporal client sets tracing up here: the attempts' spans need it all the same.
    telemetry.tracer_provider(Settings.from_env(), "goalkeeper-agent")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await serve_over_http(args.api, credentials, hook, stop)


async def wait_for_schema(pool: asyncpg.Pool, stop: asyncio.Event) -> bool:
    """Wait until a worker has created the schema, saying so meanwhile; False if stopped.

    A login that may not act for agents is an error at once: waiting would not help.
    """
    waited = 0.0
    while (allowed := await agent_access(pool)) is None:
        if waited % SCHEMA_NOTE_SECONDS < SCHEMA_POLL_SECONDS:
            log.warning(
                "PostgreSQL has no Goalkeeper schema (or one older than these agents): "
                "waiting for a worker to create it; start one with 'python worker.py' "
                "(waited %.0f s)",
                waited,
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SCHEMA_POLL_SECONDS)
        if stop.is_set():
            return False
        waited += SCHEMA_POLL_SECONDS
    if not allowed:
        login = await pool.fetchval("SELECT session_user")
        raise GoalkeeperError(
            f"PostgreSQL login {login!r} may not act for agents: use a login made with "
            f"'python starter.py agent role new NAME' (a member of {AGENT_ROLE})"
        )
    return True


async def serve(
    args: argparse.Namespace,
    client: Client,
    pool: asyncpg.Pool,
    agent_ids: list[str],
    skills: list[str],
    hook: Hook,
    stop: asyncio.Event,
) -> None:
    """Register the agents, serve their assignments until stopped, then take them offline."""
    # Each agent signs its reports and heartbeats with its own key, kept on this machine.
    keys = {agent_id: key_for("agent", agent_id) for agent_id in agent_ids}
    for agent_id in agent_ids:
        await registry.register_agent(
            pool,
            agent_id,
            args.workspace,
            skills,
            args.capacity,
            args.config,
            public_key=public_key_of(keys[agent_id]),
            operator=args.operator,
        )
    log.info(
        "agents %s serving workspace %r with skills %s",
        ", ".join(agent_ids),
        args.workspace,
        ", ".join(skills),
    )
    runner = AgentRunner(
        client,
        pool,
        agent_ids,
        hook,
        args.workspace if args.adopt_provisioned else None,
        keys=keys,
    )
    try:
        await runner.run(stop)
    finally:
        await registry.take_offline(pool, agent_ids)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    telemetry.configure_logging()
    try:
        asyncio.run(run(args))
    except (TemporalUnreachable, GoalkeeperError, ValueError, OSError) as exc:
        print(f"error: {telemetry.masked(exc)}", file=sys.stderr)
        return 3 if isinstance(exc, (TemporalUnreachable, OSError)) else 2
    return 0


if __name__ == "__main__":
    exit_process(main())
