"""`codec-server` and `codec-key new`: reading encrypted payloads, and keys to encrypt with."""

import argparse
import contextlib
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from secrets import token_hex
from urllib.parse import urlsplit

from interfaces import telemetry
from interfaces.cli.commands import Command, Commands
from interfaces.cli.session import EXIT_USAGE, CliError, Session
from interfaces.codec import new_key_entry
from interfaces.config import Settings
from interfaces.stack import database_url


def add_commands(commands: Commands, command: Command) -> None:
    server = command(
        commands,
        "codec-server",
        "decode payloads for the Temporal UI and CLI, for people with a token",
        serve,
    )
    server.add_argument("--port", type=int, default=8081, help="port (8081)")
    server.add_argument("--host", default="127.0.0.1", help="address (127.0.0.1)")
    server.add_argument(
        "--cors-origin",
        action="append",
        help="the Temporal UI's origin, e.g. http://localhost:8080 (repeat; default: "
        "GOALKEEPER_UI_URL's)",
    )
    codec_key = commands.add_parser(
        "codec-key", help="keys that encrypt payloads in Temporal"
    ).add_subparsers(dest="codec_key_command", required=True, metavar="ACTION")
    command(codec_key, "new", "make a key and print it once", new_key).add_argument(
        "--id", help="its key id (default: today's date and 4 random hex digits)"
    )


async def new_key(session: Session, args: argparse.Namespace) -> None:
    """Print a fresh key once, as the KEY_ID:BASE64 entry GOALKEEPER_CODEC_KEYS takes."""
    print_new_entry(
        session,
        args.id,
        new_key_entry,
        "put it first in GOALKEEPER_CODEC_KEYS of every worker, agent, starter, API and "
        "codec server (GOALKEEPER_CODEC_KEYS=NEW,OLD...); keep older keys after it while "
        "histories encrypted with them are read. It is kept nowhere else: store it now.",
    )


def print_new_entry(
    session: Session, key_id: str | None, make: Callable[[str], str], advice: str
) -> None:
    """Print a fresh `KEY_ID:BASE64` entry once (the codec's, the workers' secret), and on
    stderr what to do with it, so that `X=$(python starter.py ... new)` holds it alone."""
    key_id = key_id or f"{datetime.now(UTC):%Y%m%d}-{token_hex(2)}"
    try:
        entry = make(key_id)
    except ValueError as exc:  # a key id it cannot take: the error names it
        raise CliError(str(exc), EXIT_USAGE) from exc
    session.emit({"key_id": key_id, "entry": entry}, entry)
    if not session.as_json:
        print(f"key {key_id}: {advice}", file=sys.stderr)


async def serve(session: Session, args: argparse.Namespace) -> None:
    """Serve the codec endpoint for the Temporal UI and CLI until Ctrl-C."""
    keyring = session.settings.codec_keys
    if keyring is None:
        raise CliError(
            "no keys to decode with: set GOALKEEPER_CODEC_KEYS (or GOALKEEPER_CODEC_KEYS_FILE) "
            "to the keys the workers use; make one with 'python starter.py codec-key new'",
            EXIT_USAGE,
        )
    import uvicorn  # loaded here, not for every command

    from interfaces.api.codec import create_codec_app

    telemetry.configure_logging()  # who decoded what, beside uvicorn's access log
    origins = args.cors_origin or [ui_origin(session.settings)]
    app = create_codec_app(
        keyring, origins, database_url=database_url(session.settings, start=False)
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host=args.host, port=args.port, timeout_graceful_shutdown=2)
    )
    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{args.port}"
    print(
        f"Codec server {url} with keys {', '.join(keyring.ids)}, for the Temporal UI at "
        f"{', '.join(origins)}\n"
        f"  Temporal UI: codec endpoint {url}, include cross-origin credentials; sign in at "
        f"{url}/login\n"
        f"  temporal CLI: --codec-endpoint {url} --codec-auth 'Bearer TOKEN'\n"
        "Ctrl-C stops it",
        flush=True,
    )
    # uvicorn says why it could not start (a port taken, PostgreSQL down), then exits.
    with contextlib.suppress(SystemExit):
        await server.serve()
    if not server.started:
        raise CliError(f"the codec server did not start on {url}; see the log above", EXIT_USAGE)


def ui_origin(settings: Settings) -> str:
    """The origin of the Temporal UI the CLI links to (GOALKEEPER_UI_URL)."""
    parts = urlsplit(settings.ui_url)
    return f"{parts.scheme}://{parts.netloc}"
