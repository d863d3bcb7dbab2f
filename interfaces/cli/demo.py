"""`starter.py demo` (what `make demo` runs): from a question to a deliverable, end to end.

Starts Temporal (with its Web UI) and PostgreSQL unless a stack already answers at
TEMPORAL_ADDRESS, then a worker and a team of simulated agents as separate processes,
stores the shipped runbooks, and asks the sample question. A triage agent turns it
into a goal from the runbook that matches; the demo shows the goal's progress live
(in the terminal, and on the dashboard it serves) while acting as its approver, then
prints the report and the compiled deliverable, and stops everything it started.
"""

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import asyncpg
from temporalio.service import RPCError, RPCStatusCode

from goalkeeper.costs import cost_query
from goalkeeper.models import GoalReport, Progress, TaskView
from goalkeeper.records import EventKind
from goalkeeper.requests import RequestView
from goalkeeper.runbooks import parse_runbook
from goalkeeper.statuses import GoalStatus, TaskStatus
from interfaces.cli.commands import Command, Commands
from interfaces.cli.costs import describe_costs
from interfaces.cli.goals import describe_progress, describe_report
from interfaces.cli.serve import API_PORT_HELP, Dashboard, serve_beside, wait_for_stop
from interfaces.cli.session import EXIT_FAILED, CliError, Session
from interfaces.client import TemporalUnreachable
from interfaces.secret import stack_secret_file
from interfaces.stack import EmbeddedStack, database_url
from store.costs import cost_report
from store.database import apply_schema
from store.deliverables import read_deliverable
from store.paging import goal_tasks
from store.runbooks import add_runbook
from store.suggestions import list_suggestions
from workflows.goal import GoalWorkflow
from workflows.request import RequestWorkflow
from workflows.task import TaskWorkflow

RUNBOOKS = Path(__file__).resolve().parents[2] / "runbooks"

T = TypeVar("T")

APPROVER = "ops-lead"
QUESTION = "Launch the Q3 campaign to 500 qualified leads"
FIRST_DRAFT_COMMENTS = {"email-2": "Lead with the customer's numbers, not ours."}
"""Drafts the demo's approver sends back once, to show rework."""

AGENT_SKILLS = "triage,planning,data,writing,sales"
"""The simulated team; nobody has `analytics`, so Goalkeeper provisions an agent for it."""

DELIVERABLE_LINES = 30
"""Lines of the deliverable the demo prints; `goal report ID --deliverable` has it all."""


def add_commands(commands: Commands, command: Command) -> None:
    show = command(commands, "demo", "run the sample goal end to end on the embedded stack", run)
    show.add_argument("--interactive", action="store_true", help="ask me to approve each task")
    show.add_argument("--keep", action="store_true", help="keep everything running afterwards")
    show.add_argument("--agents", type=int, default=3, help="simulated agents (3)")
    show.add_argument("--success-rate", type=float, default=0.75, help="per attempt (0.75)")
    show.add_argument("--delay", default="0.3-1.2", help="seconds per task, LOW-HIGH")
    show.add_argument("--seed", default="demo", help="the agents' seed: same seed, same run")
    show.add_argument("--ui-port", type=int, default=8233, help="Temporal Web UI port (8233)")
    show.add_argument("--api-port", type=int, default=8000, help=API_PORT_HELP)
    show.add_argument("--timeout", type=float, default=300, help="give up after (300) seconds")
    show.add_argument("--llm-offline", action="store_true", help=LLM_OFFLINE_HELP)


async def add_shipped_runbooks(pool: asyncpg.Pool) -> list[str]:
    """Store the runbooks that ship in `runbooks/` (unchanged ones stay as they are)."""
    await apply_schema(pool)  # the worker may not have applied it yet
    names = []
    for path in sorted(RUNBOOKS.glob("*.toml")):
        runbook = parse_runbook(path.read_text(encoding="utf-8"), str(path))
        await add_runbook(pool, runbook)
        names.append(runbook.name)
    return names


async def run(session: Session, args: argparse.Namespace) -> None:
    settings = session.settings
    stack: EmbeddedStack | None = None
    crew: Crew | None = None
    dashboard: Dashboard | None = None
    _cancel_on_sigterm()
    try:
        env = dict(os.environ, GOALKEEPER_TASK_QUEUE=settings.task_queue)
        if await _temporal_answers(session):
            print(f"using the stack already running at {settings.temporal_address}")
            env["DATABASE_URL"] = database_url(settings, start=False)
        else:
            port = int(settings.temporal_address.rsplit(":", 1)[-1])
            stack = EmbeddedStack(settings.data_dir, port=port, ui_port=args.ui_port)
            print(f"starting Temporal on :{port} (Web UI :{args.ui_port}) and PostgreSQL ...")
            stack.start()
            env.update(stack.env())
            session.settings = replace(settings, ui_url=stack.temporal.ui_url or settings.ui_url)
        if settings.worker_secret is None:  # told DATABASE_URL, a worker needs its secret named
            env["GOALKEEPER_WORKER_SECRET_FILE"] = str(stack_secret_file(settings.data_dir))
        logs = settings.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        crew = Crew(env, logs)
        _add_team(crew, args)
        kind = "offline LLM (MCP tools, priced as gpt-4o-mini)" if args.llm_offline else "simulated"
        print(f"worker and {args.agents} {kind} agents started; logs in {logs}")
        pool = await session.pool()
        print(f"runbooks stored: {', '.join(await add_shipped_runbooks(pool))}")
        dashboard = await serve_beside(
            replace(session.settings, database_url=env["DATABASE_URL"]), args.api_port
        )
        if dashboard is not None:
            while_running = "" if args.keep else ", while the demo runs"
            print(f"dashboard: {dashboard.url} (API docs {dashboard.url}docs){while_running}")
        report = await asyncio.wait_for(_run_request(session, args, crew), args.timeout)
        print()
        print(describe_report(report))
        print(await _deliverable_shown(pool, report))
        print()
        print(await _costs_and_suggestions(pool, report.goal_id))
        print()
        print(f"Temporal Web UI: {session.ui_link(report.goal_id)}")
        print(
            f"  goals only: {session.ui_goals_link()} (progress under User Metadata, "
            "Current Details)"
        )
        if dashboard is not None and args.keep:
            print(f"dashboard: {dashboard.url}   API docs: {dashboard.url}docs")
        if report.status is not GoalStatus.COMPLETED:
            session.exit_code = EXIT_FAILED
        if args.keep:
            kept = "worker, agents and dashboard" if dashboard else "worker and agents"
            print(f"the stack, {kept} keep running; Ctrl-C stops them")
            await wait_for_stop()
        else:
            print(
                "to look around afterwards (Temporal Web UI, dashboard): 'make demo "
                "ARGS=--keep', or 'make up' (every goal is kept in the data folder)"
            )
    except TimeoutError as exc:
        raise CliError(f"the demo goal did not finish within {args.timeout:.0f}s") from exc
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None  # exit 130, as for Ctrl-C, once cleaned up below
    finally:
        if dashboard is not None:  # first: it reads the stack
            await dashboard.stop()
        if crew is not None:
            crew.stop()
        if stack is not None:
            stack.stop()


LLM_OFFLINE_HELP = (
    "LLM agents with MCP tools instead of simulated ones, on a scripted model priced as "
    "gpt-4o-mini: tool calls, notes and costs without a key"
)


def _work_args(args: argparse.Namespace) -> list[str]:
    """How the demo's agents work: simulated, or the offline LLM agent with its tools."""
    if args.llm_offline:
        from interfaces.agents.llm_offline import config

        return ["--hook", "interfaces.agents.llm_offline:hook", "--config", json.dumps(config())]
    return ["--success-rate", str(args.success_rate), "--delay", args.delay, "--seed", args.seed]


def _add_team(crew: "Crew", args: argparse.Namespace) -> None:
    """The worker and the simulated agents, each in a process of its own."""
    crew.add("worker", ["worker"])
    for n in range(1, args.agents + 1):
        # One process per agent, so killing one shows its task moving to another.
        crew.add(
            f"agent sim-{n}",
            [
                "agent",
                "--count",
                "1",
                "--first",
                str(n),
                "--skills",
                AGENT_SKILLS,
                *_work_args(args),
                *(["--adopt-provisioned"] if n == 1 else []),
            ],
        )


async def _deliverable_shown(pool: asyncpg.Pool, report: GoalReport) -> str:
    """The deliverable's first lines, and how to read the rest."""
    deliverable = await read_deliverable(pool, report.goal_id) or ""
    lines = deliverable.splitlines()
    shown = [
        f"\nThe deliverable ({report.deliverable_bytes} bytes), as compiled:\n",
        "\n".join(f"  | {line}" for line in lines[:DELIVERABLE_LINES]),
    ]
    if len(lines) > DELIVERABLE_LINES:
        shown.append(
            f"  | ... {len(lines) - DELIVERABLE_LINES} more lines: "
            f"python starter.py goal report {report.goal_id} --deliverable"
        )
    return "\n".join(shown)


def _cancel_on_sigterm() -> None:
    """SIGTERM stops the demo as Ctrl-C does: this task alone is cancelled, so its clean-up
    runs in order, the dashboard before the stack it reads."""
    task = asyncio.current_task()
    if task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)


async def _run_request(session: Session, args: argparse.Namespace, crew: "Crew") -> GoalReport:
    """Ask the sample question; once triage has made it a goal, run that goal."""
    client = await session.client()
    request_id = f"campaign-{uuid.uuid4().hex[:6]}"
    request = await client.start_workflow(
        RequestWorkflow.run,
        {"question": QUESTION, "approvers": [APPROVER]},
        id=request_id,
        task_queue=session.settings.task_queue,
        static_summary=QUESTION,
    )
    print(f"asked: {QUESTION!r} (request {request_id})")
    while True:
        for note in crew.revive():
            print(note, flush=True)
        view: RequestView | None = await answered(request.query(RequestWorkflow.status))
        if view is not None and (view.goal_id or view.status.is_terminal):
            break
        await asyncio.sleep(0.25)
    if view.goal_id is None:
        raise CliError(
            f"request {request_id} ended {view.status.value}: {view.error or view.answer}"
        )
    print(f"triage: a goal, {view.goal_id}; why: {view.reason}")
    return await _run_goal(session, args, crew, view.goal_id)


async def _run_goal(
    session: Session, args: argparse.Namespace, crew: "Crew", goal_id: str
) -> GoalReport:
    client = await session.client()
    handle = client.get_workflow_handle_for(GoalWorkflow.run, goal_id)
    tasks = await goal_tasks(client, goal_id)
    print(f"goal {goal_id}: {len(tasks)} tasks ({', '.join(t.task_id for t in tasks)})")
    print(session.ui_link(goal_id))
    interactive = sys.stdout.isatty()
    decided: set[str] = set()
    shown = ""
    pool = await session.pool()
    seen = 0
    while True:
        for note in crew.revive():
            print(("\r\033[K" if interactive else "") + note, flush=True)
        seen, happened = await _happenings(pool, goal_id, seen)
        for note in happened:
            print(("\r\033[K" if interactive else "") + note, flush=True)
        progress: Progress | None = await answered(handle.query(GoalWorkflow.progress))
        if progress is None:  # asked again at the next poll
            await asyncio.sleep(0.25)
            continue
        for waiting in await goal_tasks(client, goal_id, TaskStatus.AWAITING_APPROVAL):
            key = f"{waiting.task_id}:{waiting.assignment_id}"
            if key not in decided:
                view: TaskView | None = await answered(
                    client.get_workflow_handle(f"{goal_id}/{waiting.task_id}").query(
                        TaskWorkflow.status
                    )
                )
                if view is None:  # decided at the next poll
                    continue
                decided.add(key)
                line = await _decide(session, view, input if args.interactive else None)
                print(("\r\033[K" if interactive else "") + line, flush=True)
        line = describe_progress(progress)
        if line != shown:
            print(f"\r\033[K{line}" if interactive else line, end="" if interactive else "\n")
            sys.stdout.flush()
            shown = line
        if progress.status is not GoalStatus.RUNNING:
            break
        await asyncio.sleep(0.25)
    return await handle.result()


async def answered(query: Awaitable[T]) -> T | None:
    """What a query of the demo's polling answers, or None when Temporal gave up waiting
    for it ("Timeout expired"): a worker answers a query when it next runs the workflow,
    which on a busy machine can take longer than Temporal waits. The next poll asks again;
    any other error is the demo's end."""
    try:
        return await query
    except RPCError as exc:
        if exc.status not in (RPCStatusCode.CANCELLED, RPCStatusCode.DEADLINE_EXCEEDED):
            raise
        return None


SHOWN_EVENTS = (
    EventKind.AGENT_PROVISIONED,
    EventKind.TASK_RETRIED,
    EventKind.AGENT_UNRESPONSIVE,
    EventKind.RESULT_INVALID,
)
"""What the demo says as it happens: an agent provisioned, a task reassigned."""


async def _happenings(pool: asyncpg.Pool, goal_id: str, after: int) -> tuple[int, list[str]]:
    """The goal's provisionings and reassignments since event `after`, a line each."""
    rows = await pool.fetch(
        "SELECT seq, message FROM events WHERE goal_id = $1 AND seq > $2 "
        "AND kind = ANY($3::text[]) ORDER BY seq LIMIT 50",
        goal_id,
        after,
        [kind.value for kind in SHOWN_EVENTS],
    )
    if not rows:
        return after, []
    return rows[-1]["seq"], [f"  {row['message']}" for row in rows]


async def _costs_and_suggestions(pool: asyncpg.Pool, goal_id: str) -> str:
    """What the goal cost per agent, and what Goalkeeper suggests from its run."""
    costs = await cost_report(pool, cost_query(goal_id=goal_id, by="agent", limit=10))
    lines = [
        f"What it cost, by agent (python starter.py costs --goal {goal_id} --by agent):",
        *(f"  {line}" for line in describe_costs(costs).splitlines()),
    ]
    suggested = await list_suggestions(pool, None, limit=5, goal_id=goal_id)
    if not suggested:
        # One still open from an earlier run is not made again: say where to see it.
        lines.append("Suggestions from this run: no suggestions (all: starter.py suggestions)")
        return "\n".join(lines)
    lines.append("Suggestions from this run (python starter.py suggestions):")
    lines += [f"  {s['suggestion_id'][:8]} {s['kind']}: {s['action']}" for s in suggested]
    return "\n".join(lines)


async def _decide(session: Session, view: TaskView, ask: Callable[[str], str] | None = None) -> str:
    """Decide as the sample approver, or ask the person at the terminal (`ask`: `input`)."""
    comment = ""
    if ask:
        print(f"\n'{view.title}' by {view.agent_id}:\n  {view.result}")
        answer = await asyncio.to_thread(ask, f"{APPROVER}, approve? [Y/n/comment to reject] ")
        decision = "approve" if answer.strip().lower() in ("", "y", "yes") else "reject"
        if decision == "reject":
            comment = "" if answer.strip().lower() in ("n", "no") else answer.strip()
            while not comment:  # the agent reworks from the comment: an empty one helps nobody
                comment = (await asyncio.to_thread(ask, "why? (sent to the agent) ")).strip()
    elif view.task_id in FIRST_DRAFT_COMMENTS and view.reworks == 0:
        decision, comment = "reject", FIRST_DRAFT_COMMENTS[view.task_id]
    else:
        decision = "approve"
    client = await session.client()
    await client.get_workflow_handle(f"{view.goal_id}/{view.task_id}").signal(
        "approval_decision", {"approver": APPROVER, "decision": decision, "comment": comment}
    )
    if decision == "approve":
        return f"  {APPROVER} approves '{view.title}' (agent {view.agent_id})"
    return f"  {APPROVER} sends '{view.title}' back to agent {view.agent_id}: {comment}"


async def _temporal_answers(session: Session) -> bool:
    try:
        await session.client()
    except TemporalUnreachable:
        return False
    return True


class Crew:
    """The demo's worker and agents, each its own process, restarted if one dies.

    Like a process manager in production: kill the worker or an agent mid-demo and
    the goal finishes anyway (Temporal resumes the work; the silent agent's task is
    reassigned once its heartbeat times out).
    """

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.members: dict[str, tuple[list[str], subprocess.Popen[bytes]]] = {}

    def add(self, name: str, module_args: list[str]) -> None:
        self.members[name] = (module_args, self._spawn(name, module_args))

    def revive(self) -> list[str]:
        """Restart members that died; say which."""
        notes = []
        for name, (module_args, process) in self.members.items():
            if process.poll() is not None:
                notes.append(f"  {name} exited (code {process.returncode}); restarting it")
                self.members[name] = (module_args, self._spawn(name, module_args))
        return notes

    def stop(self) -> None:
        for _, process in reversed(self.members.values()):
            _stop(process)

    def _spawn(self, name: str, module_args: list[str]) -> subprocess.Popen[bytes]:
        log = self.logs / f"{name.replace(' ', '-')}.log"
        with log.open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", *module_args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )


def _stop(child: subprocess.Popen[bytes], grace: float = 10) -> None:
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if child.poll() is None:
            child.kill()
            child.wait()
