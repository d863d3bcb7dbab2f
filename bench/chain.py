"""A chain of dependent tasks three ways: bare Temporal, agents on the signal path, and
agents over the HTTP agent protocol (/api/v1/agent/) against the API served by uvicorn.

Each step waits for the one before, so the chain's rate is one step's latency: report,
the task's end reaching its goal, the next task's start, its assignment reaching the agent.
"""

import asyncio
import contextlib
import itertools
import socket
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import uvicorn
from temporalio.client import Client
from temporalio.worker import Worker

from bench.bare import BareAgents, BareGoal, BareTask
from interfaces.agents import registry
from interfaces.agents.http_transport import HttpTransport
from interfaces.agents.runner import AgentRunner, SimulatedWork, Work, WorkResult
from interfaces.api.app import create_app
from interfaces.config import Settings
from store.agent_credentials import new_credential
from workflows.goal import GoalWorkflow

QUEUE = "bench-chain"

HTTP_WAIT = 30.0
"""How long the HTTP agent's poll for work is held open, as agent.py --api holds it."""


async def compare(client: Client, pool: Any, tasks: int, worker: Callable[..., Any]) -> None:
    """Run a chain of `tasks` three ways in this run and print rates, step latencies and
    the HTTP path's overhead over the signal path."""
    print(f"chain of {tasks} dependent tasks, one agent answering at once")
    bare = await _bare(client, tasks)
    _line("bare Temporal", tasks, bare)
    async with worker(client, pool, QUEUE):
        signal = await _goalkeeper(client, pool, tasks, http=False)
        _line("signal path", tasks, signal, bare)
        http = await _goalkeeper(client, pool, tasks, http=True)
        _line("HTTP agent path", tasks, http, bare)
    overhead = (statistics.median(http[1]) / statistics.median(signal[1]) - 1) * 100
    print(
        f"HTTP over signal   {overhead:+8.1f} % per step (p50); "
        f"{(http[0] / signal[0] - 1) * 100:+.1f} % in the chain's time (above 0: HTTP costs more)"
    )


def _line(name: str, tasks: int, run: tuple[float, list[float]], bare: Any = None) -> None:
    elapsed, steps = run
    cuts = statistics.quantiles(steps, n=20) if len(steps) > 1 else steps * 19
    ratio = f"; ratio to bare Temporal {bare[0] / elapsed:.2f}" if bare else ""
    print(
        f"{name:<18} {tasks / elapsed:8.1f} tasks/s  ({elapsed:.1f} s){ratio}; "
        f"step p50 {statistics.median(steps) * 1000:.0f} ms, p95 {cuts[18] * 1000:.0f} ms"
    )


def _steps(times: list[float]) -> list[float]:
    """Each step's latency: from one assignment reaching the agent to the next reaching it."""
    return [b - a for a, b in itertools.pairwise(times)] or [0.0]


async def _bare(client: Client, tasks: int) -> tuple[float, list[float]]:
    """Bare Temporal's chain: one child at a time (a window of one), each signalled back."""
    agents = BareAgents()
    times: list[float] = []

    async def answer() -> None:
        while True:
            workflow_id = await agents.inbox.get()
            times.append(time.monotonic())
            await client.get_workflow_handle(workflow_id).signal("report", "done")

    async with Worker(
        client, task_queue="bare-chain", workflows=[BareGoal, BareTask], activities=[agents.assign]
    ):
        answering = asyncio.create_task(answer())
        began = time.monotonic()
        await client.execute_workflow(
            BareGoal.run,
            args=[tasks, 1],
            id=f"bare-chain-{uuid.uuid4().hex[:10]}",
            task_queue="bare-chain",
        )
        elapsed = time.monotonic() - began
        answering.cancel()
    return elapsed, _steps(times)


class _Timed:
    """Answers at once, noting when each assignment reached the agent."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.work = SimulatedWork(delay=(0, 0))

    async def __call__(self, work: Work) -> WorkResult:
        self.times.append(time.monotonic())
        return await self.work(work)


async def _goalkeeper(
    client: Client, pool: Any, tasks: int, *, http: bool
) -> tuple[float, list[float]]:
    """One goal of a chain, its agent on the signal path or over HTTP through uvicorn."""
    workspace = f"bench-chain-{'http' if http else 'signal'}-{uuid.uuid4().hex[:6]}"
    agent_id = f"{workspace}-agent"
    await registry.register_agent(pool, agent_id, workspace, ["work"], capacity=1)
    hook = _Timed()
    stop = asyncio.Event()
    async with _served(client, pool, http) as url:
        if http:
            credential = (await new_credential(pool, agent_id))["credential"]
            transport = HttpTransport(url, credential, wait=HTTP_WAIT)
            runner = AgentRunner(None, None, [agent_id], hook, transport=transport)
        else:
            runner = AgentRunner(client, pool, [agent_id], hook)
        serving = asyncio.create_task(runner.run(stop))
        began = time.monotonic()
        await client.execute_workflow(
            GoalWorkflow.run, chain_spec(tasks, workspace), id=workspace, task_queue=QUEUE
        )
        elapsed = time.monotonic() - began
        stop.set()
        await serving
    await registry.take_offline(pool, [agent_id])
    return elapsed, _steps(hook.times)


def chain_spec(tasks: int, workspace: str) -> dict[str, Any]:
    """A goal of `tasks` tasks, each depending on the one before."""
    return {
        "title": "Benchmark chain",
        "workspace": workspace,
        "tasks": [
            {"id": f"t{i}", "title": f"Task {i}", "skill": "work"}
            | ({"depends_on": [f"t{i - 1}"]} if i else {})
            for i in range(tasks)
        ],
    }


@contextlib.asynccontextmanager
async def _served(client: Client, pool: Any, http: bool) -> AsyncIterator[str]:
    """The API served by uvicorn in this process on a free port (only for the HTTP path)."""
    if not http:
        yield ""
        return
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    app = create_app(Settings.from_env(), pool=pool, client=client)
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_config=None, access_log=False))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    end = time.monotonic() + 30
    while not server.started:
        if serving.done() or time.monotonic() > end:
            raise RuntimeError("the API did not start")
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await serving
