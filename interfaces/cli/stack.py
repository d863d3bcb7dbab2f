"""`up`: the embedded stack in the foreground, for development and for looking around."""

import argparse
import asyncio
import signal

from interfaces.cli.session import Session
from interfaces.stack import EmbeddedStack


def up(session: Session, args: argparse.Namespace) -> None:
    stack = EmbeddedStack(session.settings.data_dir, port=args.port, ui_port=args.ui_port)
    stack.start()
    try:
        print(f"Temporal    {stack.temporal.address}   Web UI {stack.temporal.ui_url}")
        print(f"PostgreSQL  {stack.database_url}")
        print(f"data in {stack.data_dir.resolve()}; a restart resumes every goal")
        print(f"next: TEMPORAL_ADDRESS={stack.temporal.address} python worker.py")
        print("Ctrl-C stops the stack", flush=True)
        asyncio.run(wait_for_stop())
    finally:
        stack.stop()


async def wait_for_stop() -> None:
    """Return on Ctrl-C or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
