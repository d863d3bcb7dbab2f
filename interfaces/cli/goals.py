"""`goal start|progress|tasks|report|list`: start goals and read them."""

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from temporalio.client import (
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.service import RPCError, RPCStatusCode

from goalkeeper import budgets
from goalkeeper.costs import CostQuery, share, spend_notes
from goalkeeper.errors import InvalidGoalSpec
from goalkeeper.models import BudgetState, GoalReport, Progress
from goalkeeper.requests import RequestView, goal_request_id
from goalkeeper.statuses import GoalStatus
from interfaces.cli import queries
from interfaces.cli.commands import Command, Commands
from interfaces.cli.session import EXIT_FAILED, EXIT_USAGE, CliError, Session, table
from interfaces.cli.specs import load_spec_file, spec_from_flags
from interfaces.starting import AlreadyStarted, start_goal
from store.costs import cost_report
from store.deliverables import read_deliverable
from store.paging import goal_tasks
from workflows.goal import GoalWorkflow
from workflows.request import RequestWorkflow


def add_commands(commands: Commands, command: Command) -> None:
    goal = commands.add_parser("goal", help="start goals and read them").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    starting = command(goal, "start", "start a goal from a JSON or TOML spec, or from flags", start)
    starting.add_argument("spec", type=Path, nargs="?", help="spec file (.json or .toml)")
    starting.add_argument("--goal-id", help="goal id (default: the spec's, or generated)")
    starting.add_argument("--title", help="goal title, when giving tasks as flags")
    starting.add_argument("--description", default="", help="goal description")
    starting.add_argument("--workspace", default="default", help="workspace (default)")
    starting.add_argument("--approver", action="append", default=[], help="an approver (repeat)")
    starting.add_argument(
        "--task", action="append", default=[], help="SKILL:TITLE or SKILL:TITLE:approval (repeat)"
    )
    watch = command(
        goal,
        "progress",
        "show a goal's progress (or that a request's triage has yet to start it)",
        progress,
    )
    watch.add_argument("goal_id")
    watch.add_argument(
        "--watch",
        action="store_true",
        help="follow until the goal ends, waiting first for a request's triage to start it",
    )
    watch.add_argument("--interval", type=float, default=0.5, help="seconds between updates")
    command(goal, "tasks", "list a goal's tasks, agents and assignments", tasks).add_argument(
        "goal_id"
    )
    reporting = command(goal, "report", "wait for a goal to end and print its report", report)
    reporting.add_argument("goal_id")
    reporting.add_argument(
        "--deliverable", action="store_true", help="print the compiled deliverable instead"
    )
    listing = command(goal, "list", "list goals from the read model", list_goals)
    listing.add_argument("--limit", type=int, default=50, help="newest N goals (50)")


async def start(session: Session, args: argparse.Namespace) -> None:
    if args.spec:
        spec = load_spec_file(args.spec)
        source = str(args.spec)
    elif args.title and args.task:
        spec = spec_from_flags(
            args.title, args.description, args.workspace, args.approver, args.task
        )
        source = "flags"
    else:
        raise CliError("give a spec file, or --title and at least one --task", EXIT_USAGE)
    queue = session.settings.task_queue
    try:
        goal_id = await start_goal(session.client, session.pool, queue, spec, args.goal_id)
    except InvalidGoalSpec as exc:
        raise CliError(f"{source}: {exc}", EXIT_USAGE) from exc
    except AlreadyStarted as exc:
        raise CliError(f"goal {exc.workflow_id!r} already exists; choose another goal id") from exc
    link = session.ui_link(goal_id)
    session.emit({"goal_id": goal_id, "ui": link}, f"started goal {goal_id}\n{link}")


async def progress(session: Session, args: argparse.Namespace) -> None:
    try:
        handle = await goal_handle(
            session, args.goal_id, wait=args.interval if args.watch else None
        )
    except GoalNotStarted as exc:  # not an error: it is the goal's progress so far
        session.emit(
            {"goal_id": exc.goal_id, "started": False, "request_id": exc.request_id},
            f"{exc} ('goal progress {exc.goal_id} --watch' waits for it)",
        )
        return
    if not args.watch:
        problem = await _problem(session, handle.id)
        try:
            current = await query_progress(handle)
        except CliError as exc:
            if problem:  # a wedged goal may not answer at all: say why
                raise CliError(f"{exc}; {problem}", exc.exit_code) from exc
            raise
        shown = describe_progress(current) + (f"\nproblem: {problem}" if problem else "")
        session.emit(current.model_dump(mode="json") | {"problem": problem}, shown)
        if problem:
            session.exit_code = EXIT_FAILED
        return
    last = None
    interactive = sys.stdout.isatty() and not session.as_json
    while True:
        current = await query_progress(handle)
        if current != last:
            if interactive:
                print(f"\r\033[K{describe_progress(current)}", end="", flush=True)
            else:
                session.emit(current.model_dump(mode="json"), describe_progress(current))
            last = current
        if current.status is not GoalStatus.RUNNING:
            break
        await asyncio.sleep(args.interval)
    if interactive:
        print()
    if current.status is not GoalStatus.COMPLETED:
        session.exit_code = EXIT_FAILED


async def _problem(session: Session, goal_id: str) -> str | None:
    """What the watch says stops the goal (a wedged workflow, a stall), if PostgreSQL is
    reachable; progress is still shown without it."""
    try:
        pool = await session.pool()
    except CliError:
        return None
    value: str | None = await pool.fetchval("SELECT problem FROM goals WHERE goal_id = $1", goal_id)
    return value


async def tasks(session: Session, args: argparse.Namespace) -> None:
    try:
        handle = await goal_handle(session, args.goal_id)
    except GoalNotStarted as exc:
        session.emit([], f"{exc}; it has no tasks yet")
        return
    views = await goal_tasks(await session.client(), handle.id)
    rows = [
        [v.task_id, v.status, v.agent_id, v.attempts, v.assignment_id, ", ".join(v.waiting_on)]
        for v in views
    ]
    session.emit(
        [v.model_dump(mode="json") for v in views],
        table(rows, ["task", "status", "agent", "attempts", "assignment", "waiting on"]),
    )


async def report(session: Session, args: argparse.Namespace) -> None:
    handle = await goal_handle(session, args.goal_id, wait=STARTED_POLL_SECONDS)
    try:
        result: GoalReport = await handle.result()
    except WorkflowFailureError as exc:
        raise CliError(f"goal {args.goal_id!r} failed: {exc.cause}") from exc
    if args.deliverable:
        body = await read_deliverable(await session.pool(), args.goal_id)
        if body is None:
            raise CliError(f"goal {args.goal_id!r} has no deliverable stored")
        session.emit({"goal_id": args.goal_id, "deliverable": body}, body)
    else:
        async with (await session.pool()).acquire() as connection:
            costs = await cost_report(connection, CostQuery(goal_id=args.goal_id))
        waste = costs.total
        text = describe_report(result)
        if waste.wasted_attempts:
            text += (
                f"\n\nof which ${waste.wasted_usd:.4f} and {waste.wasted_tokens} tokens "
                f"({share(waste.wasted_usd, waste.cost_usd)}) went on {waste.wasted_attempts} "
                "failed, lapsed or reworked attempts (starter.py costs --goal "
                f"{args.goal_id} --by task)"
            )
        if notes := spend_notes(waste):
            text += "\n\n" + "\n".join(notes)
        session.emit(
            {**result.model_dump(mode="json"), "costs": waste.model_dump(mode="json")}, text
        )
    if result.status is not GoalStatus.COMPLETED:
        session.exit_code = EXIT_FAILED


async def list_goals(session: Session, args: argparse.Namespace) -> None:
    rows = await queries.list_goals(await session.pool(), args.limit)
    session.emit(
        [dict(r) for r in rows],
        table(
            [
                [
                    r["goal_id"],
                    r["status"],
                    f"{r['progress_percentage']}%",
                    f"{r['tasks_completed']}/{r['tasks_total']}",
                    r["workspace"],
                    r["title"],
                ]
                for r in rows
            ],
            ["goal", "status", "progress", "tasks", "workspace", "title"],
        ),
    )


class GoalNotStarted(CliError):
    """A goal that a running request starts if its triage finds the question needs one.
    Where a command needs the goal itself, it exits 1, as for a task not started yet."""

    def __init__(self, goal_id: str, request_id: str) -> None:
        super().__init__(
            f"goal {goal_id!r} has not started yet: request {request_id!r} starts it if its "
            "triage finds the question needs a goal"
        )
        self.goal_id, self.request_id = goal_id, request_id


async def goal_handle(
    session: Session, goal_id: str, *, wait: float | None = None
) -> WorkflowHandle[Any, GoalReport]:
    """The goal's workflow handle, or a one-line error if there is no such goal.

    A request's goal (`REQUEST_ID.goal`) that its triage has yet to start is waited for,
    looking every `wait` seconds, if given; otherwise it raises `GoalNotStarted`.
    """
    client = await session.client()
    handle = client.get_workflow_handle_for(GoalWorkflow.run, goal_id)
    told = False
    while (description := await _described(handle)) is None:
        request_id = await _request_to_start(session, goal_id)
        if request_id is None:
            raise CliError(f"no goal {goal_id!r} in namespace {client.namespace!r}", EXIT_USAGE)
        if wait is None:
            raise GoalNotStarted(goal_id, request_id)
        if not told:
            print(f"{GoalNotStarted(goal_id, request_id)}; waiting", file=sys.stderr, flush=True)
            told = True
        await asyncio.sleep(wait)
    if description.workflow_type != "GoalWorkflow":
        raise CliError(f"{goal_id!r} is a {description.workflow_type}, not a goal", EXIT_USAGE)
    return handle


STARTED_POLL_SECONDS = 0.5
"""How often a command that waits for a request's goal looks whether it has started."""


async def _described(handle: WorkflowHandle[Any, Any]) -> WorkflowExecutionDescription | None:
    """The workflow's description, or None if there is no such workflow."""
    try:
        return await handle.describe()
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            return None
        raise


async def _request_to_start(session: Session, goal_id: str) -> str | None:
    """The running request that may yet start this goal, or None if there is none; a
    request that ended without starting it is an error that says how it ended."""
    request_id = goal_request_id(goal_id)
    if request_id is None:
        return None
    request = (await session.client()).get_workflow_handle_for(RequestWorkflow.run, request_id)
    description = await _described(request)
    if description is None or description.workflow_type != "RequestWorkflow":
        return None
    if description.status is WorkflowExecutionStatus.RUNNING:
        return request_id
    try:
        view: RequestView = await request.result()
    except WorkflowFailureError as exc:
        raise CliError(f"no goal {goal_id!r}: request {request_id!r} failed: {exc.cause}") from exc
    if view.kind == "answer":
        raise CliError(
            f"no goal {goal_id!r}: request {request_id!r} was answered directly, without a goal",
            EXIT_USAGE,
        )
    raise CliError(
        f"no goal {goal_id!r}: request {request_id!r} ended {view.status} without starting it"
        + (f": {view.error}" if view.error else "")
    )


async def query_progress(handle: WorkflowHandle[Any, Any]) -> Progress:
    return await handle.query(GoalWorkflow.progress)


def describe_progress(p: Progress) -> str:
    """One line: a bar, the counts, agents, approvals and cost."""
    width = 24
    filled = round(width * p.progress_percentage / 100)
    bar = "#" * filled + "." * (width - filled)
    line = (
        f"[{bar}] {p.progress_percentage:5.1f}%  {p.tasks_completed} of {p.tasks_total} tasks, "
        f"{plural(p.agents_total, 'agent')}"
    )
    if p.tasks_awaiting_approval:
        line += f", {p.tasks_awaiting_approval} awaiting approval"
    if p.tasks_failed or p.tasks_skipped:
        line += f", {p.tasks_failed} failed, {p.tasks_skipped} skipped"
    line += f", {spend(p)}  ({p.status})"
    return f"{line}\n  {p.stage}" if p.stage.startswith("paused") else line


def spend(p: Progress) -> str:
    """Cost so far, against the goal's budget when it has one."""
    if p.budget_usd is None and p.budget_tokens is None:
        return f"${p.cost_usd:.4f}"
    budget = BudgetState(usd=p.budget_usd, tokens=p.budget_tokens)
    return "budget " + budgets.describe(budget, p.cost_usd, p.tokens_used)


def describe_report(report: GoalReport) -> str:
    p = report.progress
    rows = [
        [
            t.task_id,
            t.outcome,
            t.agent_id,
            t.attempts,
            t.reworks,
            t.tokens_used,
            f"${t.cost_usd:.4f}",
            f"{t.duration_seconds:.1f}s" if t.duration_seconds else None,
        ]
        for t in report.tasks
    ]
    lines = [
        f"Goal {report.goal_id}: {report.title}",
        f"{report.status}: {p.tasks_completed} of {p.tasks_total} tasks "
        f"({p.progress_percentage}%), {plural(p.agents_total, 'agent')}, {p.tokens_used} tokens, "
        f"{spend(p)}",
        "",
        table(rows, ["task", "outcome", "agent", "attempts", "reworks", "tokens", "cost", "time"]),
    ]
    if report.error:
        lines += ["", report.error]
    if report.deliverable_bytes:
        lines += [
            "",
            f"deliverable: {report.deliverable_bytes} bytes "
            f"(python starter.py goal report {report.goal_id} --deliverable)",
        ]
    return "\n".join(lines)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
