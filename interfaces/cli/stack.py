"""`up`: the embedded stack and the dashboard in the foreground, for development and for
looking around."""

import argparse
import asyncio
from dataclasses import replace

from goalkeeper.masking import mask_url
from interfaces.cli.commands import Command, Commands
from interfaces.cli.serve import API_PORT_HELP, serve_beside, wait_for_stop
from interfaces.cli.session import Session
from interfaces.config import Settings
from interfaces.stack import EmbeddedStack
from store.database import apply_schema, create_pool


def add_commands(commands: Commands, command: Command) -> None:
    running = command(
        commands, "up", "run the embedded Temporal (Web UI), PostgreSQL and dashboard", up
    )
    running.add_argument("--port", type=int, default=7233, help="Temporal gRPC port (7233)")
    running.add_argument("--ui-port", type=int, default=8233, help="Temporal Web UI port (8233)")
    running.add_argument("--api-port", type=int, default=8000, help=API_PORT_HELP)


def up(session: Session, args: argparse.Namespace) -> None:
    stack = EmbeddedStack(session.settings.data_dir, port=args.port, ui_port=args.ui_port)
    stack.start()
    try:
        settings = replace(
            session.settings,
            temporal_address=stack.temporal.address,
            database_url=stack.database_url,
            ui_url=stack.temporal.ui_url or session.settings.ui_url,
        )
        asyncio.run(_serve_until_stopped(stack, settings, args.api_port))
    finally:
        stack.stop()


async def _serve_until_stopped(stack: EmbeddedStack, settings: Settings, api_port: int) -> None:
    """Serve the dashboard, say where everything is, and wait for Ctrl-C."""
    pool = await create_pool(stack.database_url, max_size=1)
    try:  # the read model's tables, so the dashboard answers before any worker has run
        await apply_schema(pool)
    finally:
        await pool.close()
    dashboard = await serve_beside(settings, api_port)
    try:
        print(f"Temporal    {stack.temporal.address}   Web UI {stack.temporal.ui_url}")
        print(f"PostgreSQL  {mask_url(stack.database_url)}")
        if dashboard is not None:
            print(f"Dashboard   {dashboard.url}   API docs {dashboard.url}docs")
        print(f"data in {stack.data_dir.resolve()}; a restart resumes every goal")
        print(f"next: TEMPORAL_ADDRESS={stack.temporal.address} python worker.py")
        print("Ctrl-C stops the stack", flush=True)
        await wait_for_stop()
    finally:
        if dashboard is not None:
            await dashboard.stop()
