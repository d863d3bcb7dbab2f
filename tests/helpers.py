"""Test helpers that act as agents and approvers do: over real signals and queries."""

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from goalkeeper.models import GoalReport, Progress, TaskView
from goalkeeper.statuses import TaskStatus
from interfaces.agents import registry
from interfaces.agents.runner import AgentRunner, Hook
from interfaces.stack import TemporalDevServer, temporal_cli
from workflows.goal import GoalWorkflow

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent

PATIENCE = 180.0
"""Seconds a test waits for something that is bound to happen before it fails. Only a
failure ever waits this long, so it is generous: a busy machine slows a test down, and
must never be what fails it."""


def goal_spec(n_tasks: int = 1, workspace: str = "default", **fields: Any) -> dict[str, Any]:
    """A goal spec with `n_tasks` independent tasks of skill `writing`, or given `tasks`."""
    spec: dict[str, Any] = {
        "title": "Test goal",
        "description": "A goal made by a test",
        "workspace": workspace,
        "tasks": [
            {"id": f"t{i}", "title": f"Task {i}", "skill": "writing"} for i in range(1, n_tasks + 1)
        ],
    }
    spec.update(fields)
    return spec


def new_goal_id() -> str:
    return f"goal-{uuid.uuid4().hex[:10]}"


async def start_goal(
    client: Client, spec: dict[str, Any], task_queue: str, goal_id: str | None = None
) -> WorkflowHandle[GoalWorkflow, GoalReport]:
    """Start a goal the way the `temporal` CLI does: the spec as a plain JSON object."""
    return await client.start_workflow(
        GoalWorkflow.run, spec, id=goal_id or new_goal_id(), task_queue=task_queue
    )


async def eventually(
    probe: Callable[[], Awaitable[T | None]], timeout: float = PATIENCE, what: str = "condition"
) -> T:
    """Poll `probe` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            value = await probe()
        except RPCError as exc:  # e.g. the task workflow is not started yet
            last = exc
        else:
            if value:
                return value
            last = value
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last saw {last!r}")


async def task_view(client: Client, goal_id: str, task_id: str) -> TaskView:
    """The task's own `status` query."""
    return await client.get_workflow_handle(f"{goal_id}/{task_id}").query(
        "status", result_type=TaskView
    )


async def wait_task(
    client: Client,
    goal_id: str,
    task_id: str,
    status: TaskStatus,
    attempt: int | None = None,
    timeout: float = PATIENCE,
) -> TaskView:
    """Wait until the task reaches `status` (and, if given, its `attempt`-th assignment)."""

    async def probe() -> TaskView | None:
        view = await task_view(client, goal_id, task_id)
        if view.status is status and (attempt is None or view.attempts == attempt):
            return view
        return None

    return await eventually(probe, timeout, f"{goal_id}/{task_id} to be {status}")


async def report(
    client: Client,
    view: TaskView,
    outcome: str = "completed",
    **fields: Any,
) -> None:
    """Signal `agent_report` as the assigned agent of `view`, unless fields override it."""
    payload = {
        "agent_id": view.agent_id,
        "assignment_id": view.assignment_id,
        "outcome": outcome,
        "result": f"result of {view.task_id}",
        "tokens_used": 100,
        "cost_usd": 0.01,
    }
    payload.update(fields)
    await client.get_workflow_handle(f"{view.goal_id}/{view.task_id}").signal(
        "agent_report", payload
    )


async def decide(
    client: Client, goal_id: str, task_id: str, approver: str, decision: str, comment: str = ""
) -> None:
    await client.get_workflow_handle(f"{goal_id}/{task_id}").signal(
        "approval_decision", {"approver": approver, "decision": decision, "comment": comment}
    )


async def progress(handle: WorkflowHandle[Any, Any]) -> Progress:
    return await handle.query("progress", result_type=Progress)


async def wait_progress(
    handle: WorkflowHandle[Any, Any], check: Callable[[Progress], bool], timeout: float = PATIENCE
) -> Progress:
    async def probe() -> Progress | None:
        current = await progress(handle)
        return current if check(current) else None

    return await eventually(probe, timeout, f"progress of {handle.id}")


async def events(pool: asyncpg.Pool, goal_id: str, kind: str | None = None) -> list[asyncpg.Record]:
    """The goal's audit trail, oldest first, optionally of one kind."""
    return await pool.fetch(
        "SELECT * FROM events WHERE goal_id = $1 AND ($2::text IS NULL OR kind = $2) ORDER BY seq",
        goal_id,
        kind,
    )


def one_of(messages: Sequence[str], *parts: str) -> str:
    """The one message that holds every part. Events recorded by concurrent activities
    (the refusals of messages a workflow handled in one go) are in no fixed order."""
    found = [m for m in messages if all(p in m for p in parts)]
    assert len(found) == 1, f"expected one message holding {parts}, got {found} of {messages}"
    return found[0]


class SimulatedAgents:
    """Reports on every active assignment of a goal, as fast agents would.

    `outcome(task_id, attempt)` chooses each report's outcome; `approver`, if
    set, approves every task that awaits approval. Each report waits `delay` seconds.
    """

    def __init__(
        self,
        client: Client,
        pool: asyncpg.Pool,
        goal_id: str,
        outcome: Callable[[str, int], str] = lambda task_id, attempt: "completed",
        approver: str | None = None,
        delay: float = 0.0,
    ) -> None:
        self.client, self.pool, self.goal_id = client, pool, goal_id
        self.outcome, self.approver, self.delay = outcome, approver, delay
        self.reported: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> "SimulatedAgents":
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        decided: set[str] = set()
        while True:
            try:
                await self._round(decided)
            except Exception as exc:  # Temporal or PostgreSQL is down: retry, as agents do
                logging.getLogger(__name__).warning("simulated agents: %r", exc)
                await asyncio.sleep(0.5)
            await asyncio.sleep(0.05)

    async def _round(self, decided: set[str]) -> None:
        rows = await self.pool.fetch(
            """
            SELECT a.assignment_id::text, a.agent_id, a.task_id, a.attempt
            FROM assignments a WHERE a.goal_id = $1 AND a.status = 'active'
            """,
            self.goal_id,
        )
        for row in rows:
            if row["assignment_id"] in self.reported:
                continue
            await asyncio.sleep(self.delay)
            outcome = self.outcome(row["task_id"], row["attempt"])
            await self.client.get_workflow_handle(f"{self.goal_id}/{row['task_id']}").signal(
                "agent_report",
                {
                    "agent_id": row["agent_id"],
                    "assignment_id": row["assignment_id"],
                    "outcome": outcome,
                    "result": f"{row['task_id']} done" if outcome == "completed" else None,
                    "error": "simulated failure" if outcome == "failed" else None,
                    "tokens_used": 10,
                    "cost_usd": 0.001,
                },
            )
            self.reported.add(row["assignment_id"])
        if self.approver:
            waiting = await self.pool.fetch(
                "SELECT task_id, assignment_id::text FROM tasks "
                "WHERE goal_id = $1 AND status = 'awaiting_approval'",
                self.goal_id,
            )
            for row in waiting:
                if row["assignment_id"] in decided:
                    continue
                await decide(self.client, self.goal_id, row["task_id"], self.approver, "approve")
                decided.add(row["assignment_id"])


async def start_worker_process(
    temporal_server: TemporalDevServer, database_url: str, task_queue: str, log: Path
) -> subprocess.Popen[bytes]:
    """Run `worker.py` as its own process, as an operator would, and wait until it polls."""
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": temporal_server.address,
        "DATABASE_URL": database_url,
        "GOALKEEPER_TASK_QUEUE": task_queue,
        # The health check looks at every goal; the suite runs it only where it asks to.
        "GOALKEEPER_HEALTH_INTERVAL": "0",
    }
    before = log.stat().st_size if log.exists() else 0  # a restarted worker's log goes on
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "worker.py")], env=env, stdout=out, stderr=out
        )
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        if b"worker polling" in log.read_bytes()[before:]:
            return process
        assert process.poll() is None, log.read_text()
        await asyncio.sleep(0.1)
    process.kill()
    raise AssertionError(f"worker did not start: {log.read_text()}")


async def one_row(pool: asyncpg.Pool, sql: str, *args: Any) -> asyncpg.Record:
    """The single row a query must return."""
    row = await pool.fetchrow(sql, *args)
    assert row is not None, f"no row for {sql} {args}"
    return row


async def run_temporal(server: TemporalDevServer, *args: str) -> tuple[int, str]:
    """Run a `temporal` CLI command against the server, as a person at a shell would."""
    process = await asyncio.create_subprocess_exec(
        temporal_cli(),
        *args,
        "--address",
        server.address,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode()


@asynccontextmanager
async def running_agents(
    client: Client,
    pool: asyncpg.Pool,
    workspace: str,
    hook: Hook,
    skills: Sequence[str] = ("writing",),
) -> AsyncIterator[AgentRunner]:
    """Two agents with two slots each, enough that no task needs a provisioned agent."""
    agent_ids = [f"{workspace}-agent-{n}" for n in range(2)]
    for agent_id in agent_ids:
        await registry.register_agent(pool, agent_id, workspace, skills, capacity=2)
    # A sweep interval of an hour: only NOTIFY can wake these agents within the test.
    runner = AgentRunner(client, pool, agent_ids, hook, sweep_interval=3600)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        yield runner
    finally:
        stop.set()
        await task
        await registry.take_offline(pool, agent_ids)
