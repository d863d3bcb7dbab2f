"""`runbook add|list|show|match`: the runbooks goals are expanded from."""

import argparse
import json
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

import asyncpg

from goalkeeper.errors import InvalidRunbook
from goalkeeper.runbooks import Runbook, parse_runbook
from interfaces.cli.commands import Command, Commands
from interfaces.cli.session import EXIT_USAGE, CliError, Session, table
from store import runbooks as stored

T = TypeVar("T")


def add_commands(commands: Commands, command: Command) -> None:
    runbook = commands.add_parser("runbook", help="the runbooks goals start from").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    adding = command(runbook, "add", "store runbooks from TOML files", add)
    adding.add_argument("files", type=Path, nargs="+", help="runbook files (runbooks/*.toml)")
    command(runbook, "list", "list runbooks, latest versions", list_all)
    showing = command(runbook, "show", "show a runbook's parameters and tasks", show)
    showing.add_argument("name")
    showing.add_argument("--version", type=int, help="a version (default: the latest)")
    matching = command(runbook, "match", "rank runbooks against a goal's text, with why", match)
    matching.add_argument("text", help="what the goal is about")
    matching.add_argument("--limit", type=int, default=5, help="candidates (5)")


async def add(session: Session, args: argparse.Namespace) -> None:
    added = []
    for path in args.files:
        runbook = read_runbook(path)
        try:
            fresh = await _stored(stored.add_runbook(await session.pool(), runbook))
        except InvalidRunbook as exc:
            raise CliError(f"{path}: {exc}", EXIT_USAGE) from exc
        added.append(
            {"name": runbook.name, "version": runbook.version, "added": fresh, "file": str(path)}
        )
    session.emit(
        added,
        "\n".join(
            f"{'added' if a['added'] else 'unchanged'}: runbook {a['name']} "
            f"version {a['version']} ({a['file']})"
            for a in added
        ),
    )


def read_runbook(path: Path) -> Runbook:
    """A runbook file, checked whole; its problems as a usage error naming the file."""
    try:
        return parse_runbook(path.read_text(encoding="utf-8"), str(path))
    except OSError as exc:
        raise CliError(f"cannot read runbook file {path}: {exc.strerror}", EXIT_USAGE) from exc
    except InvalidRunbook as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc


async def list_all(session: Session, args: argparse.Namespace) -> None:
    rows = await _stored(stored.list_runbooks(await session.pool()))
    session.emit(
        rows,
        table(
            [
                [
                    r["name"],
                    r["version"],
                    r["versions"],
                    r["tasks"],
                    f"{r['completed']}/{r['runs']}",
                    f"{r['success_rate']:.2f}",
                    rating(r["average_rating"], r["ratings"]),
                    r["title"],
                    ", ".join(r["tags"]),
                ]
                for r in rows
            ],
            [
                "runbook",
                "version",
                "versions",
                "tasks",
                "completed",
                "success",
                "rating",
                "title",
                "tags",
            ],
        )
        if rows
        else "no runbooks yet: add some with 'python starter.py runbook add runbooks/*.toml'",
    )


async def show(session: Session, args: argparse.Namespace) -> None:
    runbook = await _stored(stored.fetch_runbook(await session.pool(), args.name, args.version))
    if runbook is None:
        wanted = f"version {args.version} of " if args.version else ""
        raise CliError(
            f"no {wanted}runbook {args.name!r} is stored; see 'runbook list'", EXIT_USAGE
        )
    lines = [f"{runbook.name} version {runbook.version}: {runbook.title}", runbook.description]
    if runbook.parameters:
        lines.append("parameters:")
        lines += [
            f"  {p.name}"
            + (f" (default {p.default!r})" if p.default is not None else " (required)")
            + (f": {p.description}" if p.description else "")
            for p in runbook.parameters
        ]
    lines.append("tasks:")
    for task in runbook.tasks:
        after = f" after {', '.join(task.depends_on)}" if task.depends_on else ""
        approval = ", needs approval" if task.requires_approval else ""
        lines.append(f"  {task.id} [{task.skill}{approval}]{after}: {task.title}")
    session.emit(runbook.model_dump(mode="json"), "\n".join(lines))


async def match(session: Session, args: argparse.Namespace) -> None:
    matches = await _stored(stored.match_runbooks(await session.pool(), args.text, args.limit))
    session.emit(
        [m.model_dump(mode="json") for m in matches],
        table(
            [
                [
                    m.name,
                    m.version,
                    f"{m.score:.4f}",
                    f"{m.text_rank:.4f}",
                    f"{m.completed}/{m.runs}",
                    f"{m.success_rate:.2f}",
                    rating(m.average_rating, m.ratings),
                    m.title,
                ]
                for m in matches
            ],
            ["runbook", "version", "score", "text", "completed", "success", "rating", "title"],
        )
        if matches
        else f"no runbook shares a word with {json.dumps(args.text)}",
    )


def rating(average: float | None, ratings: int) -> str:
    """A runbook's average rating and how many it rests on, e.g. `4.5 (2)`; `-` for none."""
    return "-" if average is None else f"{average:.1f} ({ratings})"


async def _stored(call: Awaitable[T]) -> T:
    try:
        return await call
    except asyncpg.UndefinedTableError as exc:
        raise CliError(
            "the runbooks table does not exist yet: start a worker once (it applies the "
            "schema), for example with 'python starter.py up'",
            EXIT_USAGE,
        ) from exc
