"""The dashboard and HTTP API (one app, docs at /docs) on uvicorn, in this process.

`serve` runs it alone, reads needing a token unless GOALKEEPER_API_OPEN_READS=on; `up` and
the demo run it beside the stack on loopback, with reads open unless that says off, each
stopping it in turn.
"""

import argparse
import asyncio
import errno
import signal
import socket
import sys
from dataclasses import replace
from typing import TYPE_CHECKING

from interfaces.cli.commands import Command, Commands
from interfaces.cli.session import EXIT_UNREACHABLE, EXIT_USAGE, CliError, Session
from interfaces.config import Settings
from interfaces.stack import database_url

if TYPE_CHECKING:
    from fastapi import FastAPI

    from interfaces.cli.uvicorn_server import SignalFreeServer

# The app, uvicorn and what they import are loaded when a command serves, not before:
# every other command of starter.py starts that much sooner.

API_PORT_HELP = "dashboard and HTTP API port (8000; 0: none)"
"""The help of `--api-port`, where `up` and the demo serve the dashboard beside the stack."""

GRACE_SECONDS = 2
"""How long open requests (a page's event stream, say) may finish once serving stops."""


def add_commands(commands: Commands, command: Command) -> None:
    api = command(
        commands, "serve", "serve the dashboard and HTTP API (/api/v1, docs at /docs)", serve
    )
    api.add_argument("--port", type=int, default=8000, help="port (8000)")
    api.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")


async def serve(session: Session, args: argparse.Namespace) -> None:
    database_url(session.settings, start=False)  # no PostgreSQL: say how to start one, now
    dashboard = Dashboard(session.settings, args.port, args.host, option="--port", quiet=False)
    await dashboard.start()
    try:
        print(f"Dashboard  {dashboard.url}   API docs {dashboard.url}docs")
        print(_reads(session.settings, args.host))
        print("Ctrl-C stops it", flush=True)
        await wait_for_stop()
    finally:
        await dashboard.stop()


async def serve_beside(settings: Settings, port: int) -> "Dashboard | None":
    """The dashboard of `up` and the demo, serving on loopback with reads open (unless
    GOALKEEPER_API_OPEN_READS=off); None for port 0, or when it cannot start: that is said
    on stderr, and the command goes on without it."""
    if not port:
        return None
    if settings.api_open_reads is None:
        settings = replace(settings, api_open_reads=True)
    dashboard = Dashboard(settings, port)
    assert _loopback(dashboard.host), "open reads only on loopback"
    try:
        await dashboard.start()
    except CliError as exc:
        print(f"warning: the dashboard is not served: {exc}", file=sys.stderr, flush=True)
        return None
    return dashboard


class Dashboard:
    """The app on uvicorn as a task of this process's event loop.

    Ctrl-C and SIGTERM stay with the command that runs it, which stops it before it
    stops what the app reads (the stack), so nothing is left behind.
    """

    def __init__(
        self,
        settings: Settings,
        port: int,
        host: str = "127.0.0.1",
        *,
        option: str = "--api-port",
        quiet: bool = True,
    ) -> None:
        """`option` is the flag that chooses the port, named when the port is taken;
        `quiet` logs warnings only (no access log) beside output meant for people."""
        self.settings = settings
        self.port, self.host, self.option = port, host, option
        self.quiet = quiet
        self.app: FastAPI | None = None
        """The app, once started."""
        self._socket: socket.socket | None = None
        self._server: SignalFreeServer | None = None
        self._serving: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    async def start(self) -> str:
        """Listen, start the app and return its address once it serves.

        Raises CliError when the port cannot be had or the app cannot reach its servers.
        """
        import uvicorn

        from interfaces.api.app import create_app
        from interfaces.cli.uvicorn_server import SignalFreeServer, serve_on

        try:
            self.app = app = create_app(self.settings, bind_host=self.host)
        except ValueError as exc:
            raise CliError(str(exc), EXIT_USAGE) from exc
        self._socket = _listen(self.host, self.port, self.option)
        self.port = self._socket.getsockname()[1]  # port 0 means any free one
        config = uvicorn.Config(
            app,
            lifespan="on",
            log_level="warning" if self.quiet else "info",
            access_log=not self.quiet,
            timeout_graceful_shutdown=GRACE_SECONDS,
        )
        self._server = SignalFreeServer(config)
        self._serving = asyncio.create_task(serve_on(self._server, self._socket))
        await self._server.settled.wait()
        if not self._server.started:
            await self.stop()
            raise CliError(
                f"the dashboard did not start on {self.url}; see the log above",
                EXIT_UNREACHABLE,
            )
        return self.url

    async def stop(self) -> None:
        """Stop serving and free the port; open requests get GRACE_SECONDS to finish."""
        if self._server is not None:
            self._server.should_exit = True
        if self._serving is not None:
            # wait, not await: the task may be cancelled already (SIGTERM cancels every
            # task), and that must not cut short the caller's own clean-up.
            await asyncio.wait([self._serving])
        if self._socket is not None:
            self._socket.close()


def _listen(host: str, port: int, option: str) -> socket.socket:
    """A socket bound to host:port, or a CliError that names the port and the way out."""
    listening = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    # As uvicorn does: a port whose last connections linger in TIME_WAIT is free.
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind((host, port))
    except (OSError, OverflowError) as exc:
        listening.close()
        if getattr(exc, "errno", None) == errno.EADDRINUSE:
            raise CliError(
                f"port {port} on {host} is taken; choose another with {option} PORT", EXIT_USAGE
            ) from exc
        raise CliError(
            f"cannot listen on {host}:{port} ({exc}); choose another with {option} PORT",
            EXIT_USAGE,
        ) from exc
    return listening


def _loopback(host: str) -> bool:
    from interfaces.api.guards import is_loopback

    return is_loopback(host)


def _reads(settings: Settings, host: str) -> str:
    if not settings.api_open_reads:
        return "Reading and acting need a token ('starter.py token new --as NAME --workspace W')"
    where = "" if _loopback(host) else f", to anyone who reaches {host}"
    return f"warning: reads are open without a token (GOALKEEPER_API_OPEN_READS){where}"


async def wait_for_stop() -> None:
    """Return on Ctrl-C or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
