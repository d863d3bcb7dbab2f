"""`serve`: the HTTP API (and its docs at /docs) on uvicorn."""

import argparse

import uvicorn

from interfaces.api.app import create_app
from interfaces.cli.session import EXIT_UNREACHABLE, CliError, Session
from interfaces.stack import database_url


async def serve(session: Session, args: argparse.Namespace) -> None:
    database_url(session.settings, start=False)  # no PostgreSQL: say how to start one, now
    app = create_app(session.settings)
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="info"))
    await server.serve()
    if not server.started:
        raise CliError(
            f"the HTTP API did not start on {args.host}:{args.port}; see the log above",
            EXIT_UNREACHABLE,
        )
