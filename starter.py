"""The Goalkeeper CLI: run the embedded stack and start, watch and report on goals.

    python starter.py up                      # Temporal (UI on :8233) + PostgreSQL
    python starter.py goal start spec.json    # prints the goal id and its UI link
    python starter.py goal progress GOAL_ID

Every command takes --help. Exit codes: 0 success, 1 the goal or request failed,
2 bad usage or input, 3 Temporal or PostgreSQL unreachable.
"""

import argparse
import asyncio
import json
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowFailureError
from temporalio.common import WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from goalkeeper.client import TemporalUnreachable, connect
from goalkeeper.config import Settings
from goalkeeper.errors import GoalkeeperError, InvalidGoalSpec
from goalkeeper.models import GoalReport, Progress, TaskView
from goalkeeper.stack import EmbeddedPostgres, TemporalDevServer
from goalkeeper.validation import validate_goal_spec
from workflows.goal import GoalWorkflow

EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 1, 2, 3


class CliError(GoalkeeperError):
    """An error to print as one line, with the exit code it means."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def load_spec(path: Path) -> dict[str, Any]:
    """Read a goal spec from JSON, naming the line of a syntax error."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise CliError(f"cannot read spec file {path}: {exc.strerror}", EXIT_USAGE) from exc
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(
            f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}", EXIT_USAGE
        ) from exc
    if not isinstance(spec, dict):
        raise CliError(f"{path}: expected a JSON object, got {type(spec).__name__}", EXIT_USAGE)
    return spec


async def goal_start(client: Client, settings: Settings, args: argparse.Namespace) -> None:
    spec = load_spec(args.spec)
    goal_id = args.goal_id or spec.get("goal_id") or f"goal-{uuid.uuid4().hex[:8]}"
    try:
        validate_goal_spec(spec, goal_id)  # the workflow checks again; this fails faster
    except InvalidGoalSpec as exc:
        raise CliError(f"{args.spec}: {exc}", EXIT_USAGE) from exc
    try:
        await client.start_workflow(
            GoalWorkflow.run,
            spec,
            id=goal_id,
            task_queue=settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            static_summary=spec.get("title"),
        )
    except RPCError as exc:
        if exc.status is RPCStatusCode.ALREADY_EXISTS:
            raise CliError(f"goal {goal_id!r} already exists; choose another goal id") from exc
        raise
    emit(args, {"goal_id": goal_id}, f"started goal {goal_id}")


async def goal_progress(client: Client, settings: Settings, args: argparse.Namespace) -> None:
    progress = await query(client, args.goal_id, "progress", Progress)
    emit(
        args,
        progress.model_dump(mode="json"),
        f"{progress.goal_id}: {progress.status}, {progress.tasks_completed} of "
        f"{progress.tasks_total} tasks ({progress.progress_percentage}%), "
        f"{progress.agents_total} agents, ${progress.cost_usd:.4f}",
    )


async def goal_tasks(client: Client, settings: Settings, args: argparse.Namespace) -> None:
    tasks = await query(client, args.goal_id, "tasks", list[TaskView])
    lines = [
        f"{t.task_id:<16} {t.status:<18} {t.agent_id or '-':<24} {t.assignment_id or '-'}"
        for t in tasks
    ]
    emit(args, [t.model_dump(mode="json") for t in tasks], "\n".join(lines))


async def goal_report(client: Client, settings: Settings, args: argparse.Namespace) -> None:
    handle = client.get_workflow_handle_for(GoalWorkflow.run, args.goal_id)
    try:
        report: GoalReport = await handle.result()
    except WorkflowFailureError as exc:
        raise CliError(f"goal {args.goal_id!r} failed: {exc.cause}") from exc
    except RPCError as exc:
        raise _not_found(exc, args.goal_id) from exc
    lines = [f"{report.goal_id}: {report.status} ({report.progress.progress_percentage}%)"]
    lines += [
        f"  {t.task_id:<16} {t.outcome:<10} {t.agent_id or '-':<24} attempts={t.attempts}"
        f" tokens={t.tokens_used} cost=${t.cost_usd:.4f}"
        for t in report.tasks
    ]
    emit(args, report.model_dump(mode="json"), "\n".join(lines))


async def query(client: Client, goal_id: str, name: str, result_type: Any) -> Any:
    try:
        return await client.get_workflow_handle(goal_id).query(name, result_type=result_type)
    except RPCError as exc:
        raise _not_found(exc, goal_id) from exc


def _not_found(exc: RPCError, goal_id: str) -> Exception:
    if exc.status is RPCStatusCode.NOT_FOUND:
        return CliError(f"no goal {goal_id!r}: {exc.message}")
    return exc


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, indent=2) if args.json else text)


def up(settings: Settings, args: argparse.Namespace) -> None:
    """Run the embedded stack in the foreground until Ctrl-C; data stays in the data dir."""
    data = settings.data_dir
    temporal = TemporalDevServer(data / "temporal.db", port=args.port, ui_port=args.ui_port)
    postgres = EmbeddedPostgres(data / "postgres")
    temporal.start()
    try:
        url = postgres.start()
        print(f"Temporal   {temporal.address}   UI {temporal.ui_url}")
        print(f"PostgreSQL {url}")
        print(f"data in {data.resolve()}; Ctrl-C stops the stack, a restart resumes every goal")
        stop = asyncio.Event()

        async def wait() -> None:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()

        asyncio.run(wait())
    finally:
        postgres.stop()
        temporal.stop()


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="starter.py", description=__doc__.split("\n\n")[0])
    top.add_argument("--json", action="store_true", help="print JSON for scripts")
    commands = top.add_subparsers(dest="command", required=True)

    up_cmd = commands.add_parser("up", help="run the embedded Temporal and PostgreSQL")
    up_cmd.add_argument("--port", type=int, default=7233, help="Temporal gRPC port")
    up_cmd.add_argument("--ui-port", type=int, default=8233, help="Temporal Web UI port")

    goal = commands.add_parser("goal", help="start and inspect goals").add_subparsers(
        dest="action", required=True
    )
    start = goal.add_parser("start", help="start a goal from a JSON spec file")
    start.add_argument("spec", type=Path, help="goal spec file (JSON)")
    start.add_argument("--goal-id", help="the goal id (default: the spec's, or generated)")
    start.set_defaults(run=goal_start)
    for name, run, text in (
        ("progress", goal_progress, "show a goal's progress"),
        ("tasks", goal_tasks, "list a goal's tasks with their agents"),
        ("report", goal_report, "wait for a goal to end and print its report"),
    ):
        command = goal.add_parser(name, help=text)
        command.add_argument("goal_id")
        command.set_defaults(run=run)
    return top


async def run_command(settings: Settings, args: argparse.Namespace) -> None:
    client = await connect(settings)
    await args.run(client, settings, args)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = Settings.from_env()
    try:
        if args.command == "up":
            up(settings, args)
        else:
            asyncio.run(run_command(settings, args))
    except TemporalUnreachable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
