"""Runs agents: wakes on their assignments, does the work, heartbeats and reports, over
PostgreSQL and Temporal or over the HTTP agent protocol (interfaces/agents/transport.py).

The work itself is a hook: the simulated work of the demo and benchmarks, a Python
function, or a shell command. A hook receives a `Work` (the goal, the task, the
results of the tasks it depends on, rework comments) and returns a `WorkResult`;
raising marks the attempt failed, with the exception's message as the error. Each
attempt runs in its goal's trace and shows there as an `invoke_agent` span
(interfaces/agents/attempt_trace.py).
"""

import asyncio
import importlib
import inspect
import json
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import asyncpg
import httpx
from opentelemetry.trace import TracerProvider
from pydantic import JsonValue
from temporalio.client import Client

from goalkeeper import signing
from goalkeeper.limits import MAX_ERROR_CHARS, clip
from goalkeeper.models import AgentReport
from interfaces.agents.attempt_trace import attempt_span
from interfaces.agents.judgement import simulated_compile, simulated_plan, simulated_triage
from interfaces.agents.transport import DatabaseTransport, Transport

log = logging.getLogger("goalkeeper.agent")

T = TypeVar("T")

SWEEP_INTERVAL = 30.0
"""Seconds between safety sweeps of the inbox; wake-ups normally come by NOTIFY."""


@dataclass(frozen=True)
class Work:
    """One assignment as the agent sees it."""

    assignment_id: str
    agent_id: str
    goal_id: str
    task_id: str
    attempt: int
    context: dict[str, Any]
    """`goal` (id, title, description), `task` (its spec), `dependency_results`, `rework`."""
    config: dict[str, Any] = field(default_factory=dict)
    """The agent's configuration as registered (or, provisioned, copied from its skill's
    best-recorded agent)."""
    poster: Callable[[str], Awaitable[None]] | None = field(default=None, compare=False, repr=False)
    """Where `note` posts: set by the runner where its transport takes notes."""
    token_rate: Callable[[str, int], Awaitable[float]] | None = field(
        default=None, compare=False, repr=False
    )
    """Asks the workspace's shared tokens-per-minute rate for (provider, tokens): 0 once
    granted (or where no limit is set), else the seconds to wait; set by the runner."""

    async def note(self, text: str) -> None:
        """Say what the agent is doing now ("searching 3 sources"), for people watching the
        goal; kept apart from workflow history. A note that cannot be posted is dropped."""
        if self.poster is not None:
            await self.poster(text)

    @property
    def goal(self) -> dict[str, Any]:
        return dict(self.context.get("goal", {}))

    @property
    def task(self) -> dict[str, Any]:
        return dict(self.context.get("task", {}))


@dataclass(frozen=True)
class WorkResult:
    """What an agent produced, and what it cost."""

    result: JsonValue
    tokens_used: int = 0
    cost_usd: float = 0.0
    input_tokens: int | None = None
    """Of `tokens_used`, those the model read (prompt) and wrote, where known."""
    output_tokens: int | None = None
    cost_known: bool = True
    """False where no price was known for the model: `cost_usd` is then no figure at all."""
    tool_calls: tuple[dict[str, Any], ...] = ()
    """Each tool call of the attempt: `tool`, `args_digest`, `duration_ms`, `outcome`
    ('success', 'failed', 'timeout'), `error`."""


Hook = Callable[[Work], Awaitable[WorkResult] | WorkResult]


@dataclass(frozen=True)
class SimulatedWork:
    """Pretend work with a chosen success rate, delay, and token use.

    The outcome of an attempt depends only on the seed, the task id, the attempt number
    and the agent's success rate, not on timing or the goal, so a given seed plays out
    the same every time. An attempt's luck is one draw that every agent shares: of two
    agents, the one with the higher rate succeeds wherever the other does.
    """

    success_rate: float = 1.0
    delay: tuple[float, float] = (0.2, 1.0)
    tokens: tuple[int, int] = (200, 2000)
    cost_per_1k_tokens: float = 0.002
    seed: str = "goalkeeper"
    success_rates: dict[str, float] = field(default_factory=dict)
    """Success rates of particular agents, by agent id; the others have `success_rate`."""

    def __post_init__(self) -> None:
        for agent_id, rate in {"any agent": self.success_rate, **self.success_rates}.items():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"expected a success rate from 0 to 1 for {agent_id}, got {rate}")

    async def __call__(self, work: Work) -> WorkResult:
        rng = random.Random(f"{self.seed}:{work.task_id}:{work.attempt}")
        await asyncio.sleep(rng.uniform(*self.delay))
        tokens = rng.randint(*self.tokens)
        cost = round(tokens / 1000 * self.cost_per_1k_tokens, 6)
        if rng.random() >= self.success_rates.get(work.agent_id, self.success_rate):
            raise SimulatedFailure(f"simulated failure on attempt {work.attempt}", tokens, cost)
        if work.task.get("expects") == "triage":
            inputs = work.task.get("inputs") or {}
            verdict = simulated_triage(
                str(inputs.get("question", "")), inputs.get("runbook_candidates") or [], rng
            )
            return WorkResult(result=verdict, tokens_used=tokens, cost_usd=cost)
        if work.task.get("expects") == "deliverable":
            compiled = simulated_compile(work.goal, work.context.get("dependency_results") or {})
            return WorkResult(result=compiled, tokens_used=tokens, cost_usd=cost)
        if work.task.get("expects") == "plan":
            plan = simulated_plan(work.goal, work.task.get("inputs") or {})
            return WorkResult(result=plan, tokens_used=tokens, cost_usd=cost)
        rework = work.context.get("rework") or []
        note = f" (rework: {rework[-1]['comment']})" if rework else ""
        return WorkResult(
            result=f"{work.task.get('title', work.task_id)} done by {work.agent_id}{note}",
            tokens_used=tokens,
            cost_usd=cost,
        )


class SimulatedFailure(Exception):
    """A simulated attempt that failed, having spent tokens all the same."""

    def __init__(self, message: str, tokens_used: int, cost_usd: float) -> None:
        super().__init__(message)
        self.tokens_used, self.cost_usd = tokens_used, cost_usd


@dataclass(frozen=True)
class CommandHook:
    """Runs a shell command per assignment: `Work` as JSON on stdin, the result on stdout.

    A non-zero exit fails the attempt with the command's stderr as the error.
    """

    command: str

    async def __call__(self, work: Work) -> WorkResult:
        process = await asyncio.create_subprocess_shell(
            self.command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        kept = {k: v for k, v in work.__dict__.items() if k not in ("poster", "token_rate")}
        payload = json.dumps(kept).encode()
        out, err = await process.communicate(payload)
        if process.returncode != 0:
            raise RuntimeError(
                f"command exited with {process.returncode}: {err.decode().strip()[:500]}"
            )
        return WorkResult(result=out.decode().strip())


def load_function_hook(spec: str) -> Hook:
    """Import `module:function`; the function takes a `Work` and returns a `WorkResult`."""
    module_name, _, name = spec.partition(":")
    if not module_name or not name:
        raise ValueError(f"expected a hook as module:function, got {spec!r}")
    function = getattr(importlib.import_module(module_name), name, None)
    if not callable(function):
        raise ValueError(f"{spec!r} is not a function")
    return function


@dataclass
class AgentRunner:
    """Serves the assignments of a set of agents until stopped.

    It reaches Goalkeeper through its `transport`: by default PostgreSQL and Temporal
    (`client` and `pool`), or the HTTP agent protocol (`HttpTransport`, which needs
    neither).
    """

    client: Client | None
    pool: asyncpg.Pool | None
    agent_ids: Sequence[str]
    hook: Hook
    adopt_in_workspace: str | None = None
    """Also serve agents Goalkeeper provisioned in this workspace (they have no process)."""
    sweep_interval: float = SWEEP_INTERVAL
    keys: Mapping[str, str] = field(default_factory=dict)
    """Agents' private keys by agent id: their reports and heartbeats are signed."""
    unsigned: set[str] = field(default_factory=set)
    """Provisioned agents another runner gave a key: this one cannot sign for them."""
    started: set[str] = field(default_factory=set)
    reports: int = 0
    transport: Transport | None = None
    tracer_provider: TracerProvider | None = None
    """Where each attempt's `invoke_agent` span goes; the process's own if None."""

    def __post_init__(self) -> None:
        if self.transport is None:
            if self.client is None or self.pool is None:
                raise ValueError("expected a Temporal client and a pool, or a transport")
            self.transport = DatabaseTransport(self.client, self.pool, self.sweep_interval)

    @property
    def _transport(self) -> Transport:
        assert self.transport is not None  # set by __post_init__
        return self.transport

    async def run(self, stop: asyncio.Event) -> None:
        await self._transport.open()
        running: dict[str, asyncio.Task[None]] = {}
        seen: list[str] = []
        try:
            while not stop.is_set():
                rows = await _unless_stopped(
                    self._transport.assignments(self.agent_ids, self.adopt_in_workspace, seen),
                    stop,
                )
                seen = [row["assignment_id"] for row in rows or ()]  # each started below
                for row in rows or ():
                    if row["assignment_id"] not in self.started:
                        self.started.add(row["assignment_id"])
                        task = asyncio.create_task(self._serve(row))
                        running[row["assignment_id"]] = task
                        task.add_done_callback(_forget(running, row["assignment_id"]))
        finally:
            for task in list(running.values()):
                task.cancel()
            await asyncio.gather(*running.values(), return_exceptions=True)
            await self._transport.close()

    async def _serve(self, row: Mapping[str, Any]) -> None:
        """Do one assignment, heartbeating meanwhile, and report how it went."""
        work = self._work_of(row)
        adopted = work.agent_id not in self.agent_ids
        if adopted and work.agent_id not in self.keys and work.agent_id not in self.unsigned:
            await self._adopt_key(work.agent_id)
        log.info(
            "agent %s works on %s/%s (attempt %d)",
            work.agent_id,
            work.goal_id,
            work.task_id,
            work.attempt,
        )
        doing = asyncio.create_task(self._do(work))
        beating = asyncio.create_task(self._heartbeat(work, doing))
        try:
            report = await doing
        except asyncio.CancelledError:
            return  # the assignment was taken away; the heartbeat said why
        finally:
            beating.cancel()
        try:
            report["result"] = await self._transport.by_reference(
                work.assignment_id, report.get("result")
            )
        except Exception as exc:  # the assignment ended meanwhile: not ours now
            log.warning(
                "agent %s could not store its result for %s/%s: %s",
                work.agent_id,
                work.goal_id,
                work.task_id,
                exc,
            )
            return
        key = self.keys.get(work.agent_id)
        if key is not None:
            content = signing.report_content(work.goal_id, work.task_id, AgentReport(**report))
            report["signature"] = signing.sign(key, content)
        if not await self._transport.report(work.goal_id, work.task_id, report):
            return
        self.reports += 1
        log.info(
            "agent %s reported %s on %s/%s",
            work.agent_id,
            report["outcome"],
            work.goal_id,
            work.task_id,
        )

    async def _do(self, work: Work) -> dict[str, Any]:
        """Run the hook; its exception is the attempt's failure."""
        report: dict[str, Any] = {"agent_id": work.agent_id, "assignment_id": work.assignment_id}
        try:
            # A dependency's result that cannot be read fails the attempt, naming it.
            work = await self._resolved(work)
            with attempt_span(work, self.tracer_provider) as attempt:
                produced = self.hook(work)
                done = await produced if inspect.isawaitable(produced) else produced
                if not isinstance(done, WorkResult):
                    done = WorkResult(result=done)
                attempt.done = done
            return report | {"outcome": "completed", "result": done.result} | _spending(done)
        except Exception as exc:
            # Goalkeeper refuses longer errors: the end of a traceback says most.
            error = str(exc) or type(exc).__name__
            report |= {"outcome": "failed", "error": clip(error, MAX_ERROR_CHARS)}
            spent = getattr(exc, "done", None)  # a failure that says what it spent (LLM)
            if isinstance(spent, WorkResult):
                report |= _spending(spent)
            elif isinstance(exc, SimulatedFailure):
                report |= {"tokens_used": exc.tokens_used, "cost_usd": exc.cost_usd}
            return report

    async def _heartbeat(self, work: Work, doing: asyncio.Task[Any]) -> None:
        """Tell the task it is being worked on; stop the work if it is no longer ours.

        Over PostgreSQL the heartbeat is written to the assignment's row, where the task
        workflow reads it when the allowed silence runs out: days of heartbeats add
        nothing to any workflow history.
        """
        timeout = float(work.context.get("heartbeat_timeout_seconds") or 60)
        while not doing.done():
            await asyncio.sleep(max(1.0, timeout / 3))
            if doing.done():
                return
            at = datetime.now(UTC)
            try:
                held = await self._transport.heartbeat(
                    work.goal_id,
                    work.task_id,
                    work.agent_id,
                    work.assignment_id,
                    at,
                    self._beat_signature(work, at),
                )
            except (OSError, asyncpg.PostgresError, httpx.HTTPError) as exc:
                log.warning("agent %s could not heartbeat: %s", work.agent_id, exc)  # keep working
                continue
            if not held:
                log.warning(
                    "agent %s lost %s/%s: the assignment is no longer active",
                    work.agent_id,
                    work.goal_id,
                    work.task_id,
                )
                doing.cancel()
                return

    async def _adopt_key(self, agent_id: str) -> None:
        """Sign for a provisioned agent this runner adopts, once the agent has the key (the
        first runner to adopt an agent gives it its key). Held in memory only: a provisioned
        agent lives as long as its goal, and leaves no key file behind."""
        key, public = signing.new_keys()
        try:
            claimed = await self._transport.claim_provisioned(agent_id, public)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("could not give provisioned agent %s a key: %s", agent_id, exc)
            return
        if claimed:
            self.keys = {**self.keys, agent_id: key}
        else:
            self.unsigned.add(agent_id)  # said once, not on each of its assignments
            log.warning(
                "provisioned agent %s has another key: its reports from here go unsigned",
                agent_id,
            )

    def _beat_signature(self, work: Work, at: datetime) -> str | None:
        """The agent's signature of its heartbeat at `at`; None without a key."""
        key = self.keys.get(work.agent_id)
        if key is None:
            return None
        content = signing.heartbeat_content(
            work.goal_id, work.task_id, work.agent_id, work.assignment_id, at.isoformat()
        )
        return signing.sign(key, content)

    async def _resolved(self, work: Work) -> Work:
        """The work with its dependencies' results read where they are stored."""
        context = dict(work.context)
        context["dependency_results"] = {
            task_id: await self._transport.resolve(value)
            for task_id, value in (context.get("dependency_results") or {}).items()
        }
        return replace(work, context=context)

    def _work_of(self, row: Mapping[str, Any]) -> Work:
        context = dict(row["context"])
        return Work(
            assignment_id=row["assignment_id"],
            agent_id=row["agent_id"],
            goal_id=row["goal_id"],
            task_id=row["task_id"],
            attempt=row["attempt"],
            context=context,
            config=dict(row["config"] or {}),
            poster=_poster(self._transport, row["assignment_id"], row["agent_id"]),
            token_rate=partial(self._transport.token_rate, row["agent_id"]),
        )


def _poster(
    transport: Transport, assignment_id: str, agent_id: str
) -> Callable[[str], Awaitable[None]]:
    """Posts the assignment's notes through `transport`; a refused note is logged, and the
    work goes on."""

    async def post(text: str) -> None:
        try:
            await transport.note(assignment_id, agent_id, text)
        except Exception as exc:
            log.warning("agent %s: note on %s not posted: %s", agent_id, assignment_id, exc)

    return post


def _spending(done: WorkResult) -> dict[str, Any]:
    """What an attempt spent and the tool calls it made, as its report says them: only
    what the hook gave, so a report without them signs as it always did."""
    spent: dict[str, Any] = {"tokens_used": done.tokens_used, "cost_usd": done.cost_usd}
    if done.input_tokens is not None:
        spent["input_tokens"] = done.input_tokens
    if done.output_tokens is not None:
        spent["output_tokens"] = done.output_tokens
    if not done.cost_known:
        spent["cost_known"] = False
    if done.tool_calls:
        spent["tool_calls"] = [dict(call) for call in done.tool_calls]
    return spent


def _forget(
    running: dict[str, asyncio.Task[None]], assignment_id: str
) -> Callable[[asyncio.Task[None]], None]:
    """A done callback that drops the assignment's task from those running."""

    def forget(_: asyncio.Task[None]) -> None:
        running.pop(assignment_id, None)

    return forget


async def _unless_stopped(waiting: Awaitable[T], stop: asyncio.Event) -> T | None:
    """What `waiting` gives, or None once `stop` is set first."""
    task = asyncio.ensure_future(waiting)
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    return task.result() if task.done() and not task.cancelled() else None
