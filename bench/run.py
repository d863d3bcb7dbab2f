"""Goalkeeper beside bare Temporal on the embedded stack: throughput, latency, size, memory.

    python bench/run.py [--goals 100] [--tasks 10] [--agents 8] [--big 10000] [--audit 20]
    python bench/run.py --learning-only [--learning 200]
    python bench/run.py --agents-only [--chain 100]

Starts its own Temporal dev server and PostgreSQL (free ports, a temporary folder), and
runs, in one process, one worker and simulated agents that answer at once:

1. bare Temporal: per task a child workflow, one activity and one signal (bench/bare.py);
2. Goalkeeper: the same number of goals and tasks, with progress queried throughout;
3. one goal of `--big` tasks (0 skips it);

and first, on a team of agents of known success rates, the first-try success of
learned agent choice against least-loaded (`--learning` tasks each; `--learning-only`
runs just that).

It prints tasks per second for both and their ratio, goal latency, progress-query
latency, the big goal's duration, the process's peak memory, and from the histories of
`--audit` goals: events per task (the task's own and its goal's share), the longest
run history and the largest payload seen. Figures depend on the machine: compare runs
on the same one.
"""

import argparse
import asyncio
import contextlib
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.worker import Worker

from bench import chain
from bench.bare import BareAgents, BareGoal, BareTask
from goalkeeper.models import TaskPage
from interfaces import telemetry
from interfaces.agents import registry
from interfaces.agents.runner import AgentRunner, SimulatedWork
from interfaces.api.app import create_app
from interfaces.config import Settings
from interfaces.metrics import COLLECT_EVERY, collect
from interfaces.secret import new_secret_entry, parse_secret
from interfaces.stack import EmbeddedPostgres, TemporalDevServer, free_port
from interfaces.starting import store_spec
from monitoring.watch import Watch
from store.database import apply_schema, create_pool
from store.paging import goal_tasks
from store.tokens import new_token
from worker import build_worker
from workflows.goal import GoalWorkflow

SEAL_KEYS = parse_secret(new_secret_entry("bench"), "the bench's worker secret")
"""The workers' secret of this run, as a worker is given one."""

WINDOW = 100


async def bench(args: argparse.Namespace, folder: Path) -> None:
    server = TemporalDevServer(folder / "temporal.db", port=free_port(), ui_port=None)
    server.start()
    postgres = EmbeddedPostgres(folder / "postgres")
    try:
        pool = await create_pool(postgres.start(), max_size=20)
        await apply_schema(pool)
        # Metrics on, as in production: the SDK's and Goalkeeper's own, for both runs.
        metrics_address = f"127.0.0.1:{free_port()}"
        client = await Client.connect(
            server.address,
            data_converter=pydantic_data_converter,
            runtime=telemetry.runtime(metrics_address),
        )
        if args.agents_only:
            await chain.compare(client, pool, args.chain, _chain_worker)
            await pool.close()
            return
        if args.learning:
            await _learning(client, pool, args.learning)
            if args.learning_only:
                await pool.close()
                return
        if args.api_only:
            async with build_worker(client, pool, "bench", seal_keys=SEAL_KEYS):
                await _api_latencies(client, pool, args.api_goals)
            await pool.close()
            return
        if args.chain:
            await chain.compare(client, pool, args.chain, _chain_worker)
        total = args.goals * args.tasks
        print(f"{args.goals} goals x {args.tasks} tasks, one worker, agents answering at once")

        bare_elapsed, bare_ids = await _bare(client, args.goals, args.tasks)
        print(f"bare Temporal      {total / bare_elapsed:8.1f} tasks/s  ({bare_elapsed:.1f} s)")
        await _bare_audit(client, bare_ids[: args.audit], args.tasks)

        agent_ids = [f"bench-{n}" for n in range(args.agents)]
        for agent_id in agent_ids:
            await registry.register_agent(pool, agent_id, "bench", ["work"], capacity=50)
        runner = AgentRunner(client, pool, agent_ids, SimulatedWork(delay=(0, 0)), "bench")
        stop = asyncio.Event()
        async with build_worker(client, pool, "bench", seal_keys=SEAL_KEYS):
            serving = asyncio.create_task(runner.run(stop))
            # What a worker runs beside its workflows: the watch and the metrics collector.
            rounds: list[float] = []
            watch = Watch(pool, client, task_queue="bench")
            watching = asyncio.create_task(_watch(watch, stop, rounds))
            meter = telemetry.metric_meter(metrics_address)
            collecting = asyncio.create_task(collect(pool, meter, COLLECT_EVERY, stop))
            transactions = await _transactions(pool)
            began = time.monotonic()
            ids = [f"bench-{uuid.uuid4().hex[:10]}" for _ in range(args.goals)]
            latencies = await asyncio.gather(*(_goal(client, i, args.tasks) for i in ids))
            elapsed = time.monotonic() - began
            per_task = (await _transactions(pool) - transactions) / total
            print(
                f"Goalkeeper         {total / elapsed:8.1f} tasks/s  ({elapsed:.1f} s); "
                f"ratio to bare Temporal {bare_elapsed / elapsed:.2f}"
            )
            cuts = statistics.quantiles(latencies, n=20) if len(latencies) > 1 else latencies * 19
            print(
                f"goal latency       p50 {statistics.median(latencies):.2f} s, p95 {cuts[18]:.2f} s"
            )
            print(f"PostgreSQL         {per_task:8.1f} transactions per task (worker and agents)")
            await _audit(client, ids[: args.audit])
            queries = await _query_latencies(client, 100)
            print(
                f"progress query     p50 {queries[len(queries) // 2] * 1000:.1f} ms, "
                f"p99 {queries[int(len(queries) * 0.99)] * 1000:.1f} ms "
                f"({len(queries)} queries while 100 goals wait for their agents)"
            )
            if args.api_goals:
                await _api_latencies(client, pool, args.api_goals)
            if args.big:
                big_id = f"bench-big-{uuid.uuid4().hex[:8]}"
                began = time.monotonic()
                await _goal(client, big_id, args.big)
                took = time.monotonic() - began
                print(f"{args.big}-task goal  {took:8.1f} s ({args.big / took:.1f} tasks/s)")
                await _audit(client, [big_id])
            if args.huge:
                await _huge(client, pool, args.huge, args.until)
            stop.set()
            await asyncio.gather(serving, watching, collecting)
            rounds.sort()
            print(
                f"watch round        p50 {rounds[len(rounds) // 2] * 1000:.1f} ms, "
                f"max {rounds[-1] * 1000:.1f} ms ({len(rounds)} rounds, every "
                f"{WATCH_EVERY:.0f} s: wedged workflows, stalled goals)"
            )
        await pool.close()
    finally:
        postgres.stop()
        server.stop()
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory        {peak_mib:8.1f} MiB (this process: worker, agents, client)")


WATCH_EVERY = 5.0


def _chain_worker(client: Client, pool: Any, queue: str) -> Any:
    return build_worker(client, pool, queue, seal_keys=SEAL_KEYS)


async def _watch(watch: Watch, stop: asyncio.Event, rounds: list[float]) -> None:
    """The worker's watch at its default pace, timing each round."""
    while not stop.is_set():
        began = time.monotonic()
        await watch.look()
        rounds.append(time.monotonic() - began)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), WATCH_EVERY)


LEARNING_TEAM = {"a": 0.9, "b": 0.6, "c": 0.3}
"""Success rates of the simulated team both agent selections are given."""


async def _learning(client: Client, pool: Any, tasks: int) -> None:
    """First-try success of learned agent choice against least-loaded, on the same team.

    Each selection gets a fresh team of `LEARNING_TEAM` agents and one goal of `tasks`
    tasks, ten running at once. An attempt's luck depends only on the task and the
    attempt number, so both face the same draws: only who gets which task differs.
    """
    print(
        f"agent choice: {tasks} tasks per selection, 10 at once, agents succeeding "
        + "/".join(f"{rate:.0%}" for rate in LEARNING_TEAM.values())
        + " of attempts"
    )
    for selection in ("least_loaded", "learned"):
        workspace = f"bench-{selection}-{uuid.uuid4().hex[:6]}"
        rates = {f"{workspace}-{name}": rate for name, rate in LEARNING_TEAM.items()}
        for agent_id in rates:
            await registry.register_agent(pool, agent_id, workspace, ["work"], capacity=10)
        hook = SimulatedWork(delay=(0, 0), seed="bench-learning", success_rates=rates)
        runner = AgentRunner(client, pool, list(rates), hook, workspace)
        stop = asyncio.Event()
        queue = f"bench-{selection}"
        async with build_worker(client, pool, queue, selection=selection, seal_keys=SEAL_KEYS):
            serving = asyncio.create_task(runner.run(stop))
            transactions = await _transactions(pool)
            spec = _spec(tasks) | {"workspace": workspace, "max_running_tasks": 10}
            began = time.monotonic()
            await client.execute_workflow(
                GoalWorkflow.run, spec, id=f"{workspace}-goal", task_queue=queue
            )
            took = time.monotonic() - began
            per_task = (await _transactions(pool) - transactions) / tasks
            stop.set()
            await serving
        await registry.take_offline(pool, list(rates))
        rows = await pool.fetch(
            "SELECT agent_id, status::text FROM assignments WHERE goal_id = $1 AND attempt = 1",
            f"{workspace}-goal",
        )
        first = sum(r["status"] == "completed" for r in rows) / tasks
        shares = Counter(r["agent_id"].removeprefix(f"{workspace}-") for r in rows)
        print(
            f"{selection.replace('_', '-'):18} first-try success {first:6.1%}; first tries "
            + ", ".join(f"{name} {shares[name] / tasks:.0%}" for name in LEARNING_TEAM)
            + f"; {took:.1f} s, {per_task:.1f} transactions per task"
        )


async def _bare(client: Client, goals: int, tasks: int) -> tuple[float, list[str]]:
    agents = BareAgents()
    ids = [f"bare-{uuid.uuid4().hex[:10]}" for _ in range(goals)]
    async with Worker(
        client,
        task_queue="bare",
        workflows=[BareGoal, BareTask],
        activities=[agents.assign],
    ):
        answering = asyncio.create_task(_answer(client, agents))
        began = time.monotonic()
        await asyncio.gather(
            *(
                client.execute_workflow(
                    BareGoal.run,
                    args=[tasks, WINDOW],
                    id=goal_id,
                    task_queue="bare",
                )
                for goal_id in ids
            )
        )
        elapsed = time.monotonic() - began
        answering.cancel()
    return elapsed, ids


async def _bare_audit(client: Client, goal_ids: list[str], tasks: int) -> None:
    """Events per task of bare Temporal, counted as for Goalkeeper: the yardstick's own."""
    if not goal_ids:
        return
    parent = sum([len((await _history(client, goal_id)).events) for goal_id in goal_ids])
    own = [len((await _history(client, f"{goal_id}/t0")).events) for goal_id in goal_ids]
    print(
        f"events per task    {statistics.mean(own):8.1f} in the task's history, "
        f"{parent / (len(goal_ids) * tasks):.1f} in its parent's (bare Temporal)"
    )


async def _history(client: Client, workflow_id: str) -> Any:
    return await client.get_workflow_handle(workflow_id).fetch_history()


async def _answer(client: Client, agents: BareAgents) -> None:
    sending: set[asyncio.Task[None]] = set()
    while True:
        workflow_id = await agents.inbox.get()
        task = asyncio.create_task(client.get_workflow_handle(workflow_id).signal("report", "done"))
        sending.add(task)
        task.add_done_callback(sending.discard)


async def _goal(client: Client, goal_id: str, tasks: int) -> float:
    spec = _spec(tasks)
    began = time.monotonic()
    await client.execute_workflow(GoalWorkflow.run, spec, id=goal_id, task_queue="bench")
    return time.monotonic() - began


API_TASKS = 100
"""Tasks of each goal the API benchmark reads: a goal page's worth."""


async def _api_latencies(client: Client, pool: Any, goals: int, seconds: float = 15.0) -> None:
    """Latencies of the goal page's API answers (the goal, its 100 tasks) with `goals` live
    goals of `API_TASKS` tasks each whose agents never answer, served in this process."""
    spec = {
        "title": "Live goal",
        "workspace": "bench-api",
        "max_running_tasks": 5,
        "tasks": [{"id": f"t{i}", "title": f"Task {i}", "skill": "idle"} for i in range(API_TASKS)],
    }
    ids = [f"bench-api-{uuid.uuid4().hex[:10]}" for _ in range(goals)]
    handles = [
        await client.start_workflow(GoalWorkflow.run, spec, id=i, task_queue="bench") for i in ids
    ]
    for handle in handles:  # every goal is live, its tasks recorded
        while (await handle.query(GoalWorkflow.progress)).tasks_running < 5:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    app = create_app(Settings.from_env(), pool=pool, client=client)
    goal_page: list[float] = []
    task_page: list[float] = []
    transport = httpx.ASGITransport(app=app)
    # Read as a person does in production: with a token of the goals' workspace.
    token = (await new_token(pool, "bench", [spec["workspace"]]))["token"]
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=transport,
            base_url="http://localhost",
            headers={"Authorization": f"Bearer {token}"},
        ) as http,
    ):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for goal_id in ids:
                for path, seen in (("", goal_page), ("/tasks?limit=100", task_page)):
                    began = time.monotonic()
                    answer = await http.get(f"/api/v1/goals/{goal_id}{path}")
                    seen.append(time.monotonic() - began)
                    answer.raise_for_status()
    for handle in handles:
        await handle.terminate("benchmark over")
    for name, seen in (("goal", goal_page), ("its 100 tasks", task_page)):
        seen.sort()
        print(
            f"API {name:<14} p50 {seen[len(seen) // 2] * 1000:.1f} ms, "
            f"p99 {seen[int(len(seen) * 0.99)] * 1000:.1f} ms ({len(seen)} requests, "
            f"{goals} live goals of {API_TASKS} tasks)"
        )


async def _query_latencies(client: Client, goals: int, seconds: float = 15.0) -> list[float]:
    """Progress-query latencies, sorted, of `goals` goals whose agents never answer."""
    ids = [f"bench-wait-{uuid.uuid4().hex[:10]}" for _ in range(goals)]
    spec = {
        "title": "Waiting goal",
        "workspace": "bench-idle",
        "tasks": [{"id": f"t{i}", "title": f"Task {i}", "skill": "idle"} for i in range(3)],
    }
    handles = [
        await client.start_workflow(GoalWorkflow.run, spec, id=i, task_queue="bench") for i in ids
    ]
    for handle in handles:  # every goal has started its tasks
        while (await handle.query(GoalWorkflow.progress)).tasks_running < 3:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    seen: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for handle in handles:
            began = time.monotonic()
            await handle.query(GoalWorkflow.progress)
            seen.append(time.monotonic() - began)
    for handle in handles:
        await handle.terminate("benchmark over")
    return sorted(seen)


async def _transactions(pool: Any) -> int:
    return int(
        await pool.fetchval(
            "SELECT sum(xact_commit + xact_rollback) FROM pg_stat_database "
            "WHERE datname = current_database()"
        )
    )


async def _audit(client: Client, goal_ids: list[str], sample_tasks: int = 50) -> None:
    """Events per task, the longest run history and the largest event, from the histories.

    Reads every run of each goal and of its partitions, and `sample_tasks` tasks' own
    histories per goal. A task's parent is its goal, or its partition in a large goal.
    """
    if not goal_ids:
        return
    task_events: list[int] = []
    parent_events = 0
    tasks = 0
    longest = 0
    largest: tuple[int, str] = (0, "")
    input_largest = 0
    for goal_id in goal_ids:
        page = await client.get_workflow_handle(goal_id).query("tasks", result_type=TaskPage)
        parents = page.partitions or [goal_id]
        for workflow_id in [goal_id, *page.partitions]:
            async for execution in client.list_workflows(f'WorkflowId = "{workflow_id}"'):
                handle = client.get_workflow_handle(workflow_id, run_id=execution.run_id)
                history = await handle.fetch_history()
                if workflow_id in parents:
                    parent_events += len(history.events)
                if os.environ.get("BENCH_EVENTS"):
                    kinds = Counter(EventType.Name(e.event_type) for e in history.events)
                    print(workflow_id, dict(kinds))
                longest = max(longest, len(history.events))
                if workflow_id == goal_id:  # the goal's input is what the person sent
                    input_largest = max(input_largest, history.events[0].ByteSize())
                    largest = max(largest, _largest_payload(history.events[1:], workflow_id))
                else:
                    largest = max(largest, _largest_payload(history.events, workflow_id))
        progress = await client.get_workflow_handle(goal_id).query(GoalWorkflow.progress)
        tasks += progress.tasks_completed + progress.tasks_failed + progress.tasks_skipped
        sample = (
            await goal_tasks(client, goal_id)
            if not page.partitions
            else (
                await client.get_workflow_handle(page.partitions[0]).query(
                    "tasks", {"limit": sample_tasks}, result_type=TaskPage
                )
            ).tasks
        )
        for task in sample[:sample_tasks]:
            if not task.status.is_terminal:
                continue
            history = await client.get_workflow_handle(f"{goal_id}/{task.task_id}").fetch_history()
            task_events.append(len(history.events))
            longest = max(longest, len(history.events))
            largest = max(largest, _largest_payload(history.events, "a task"))
    print(
        f"events per task    {statistics.mean(task_events or [0]):8.1f} in the task's history, "
        f"{parent_events / max(tasks, 1):.1f} in its parent's ({tasks} tasks ended)"
    )
    print(
        f"longest history    {longest:8d} events; largest event {largest[0] / 1024:.1f} KiB, "
        f"{largest[1]} (besides the goal's own input, {input_largest / 1024:.1f} KiB)"
    )


async def _huge(client: Client, pool: Any, tasks: int, until: int) -> None:
    """Start a goal of `tasks` tasks by reference, run it to `until` completions, audit it."""
    goal_id = f"bench-huge-{uuid.uuid4().hex[:8]}"
    spec = _spec(tasks)
    spec_ref = await store_spec(pool, spec)
    began = time.monotonic()
    handle = await client.start_workflow(
        GoalWorkflow.run, {"spec_ref": spec_ref}, id=goal_id, task_queue="bench"
    )
    while (now := await handle.query(GoalWorkflow.progress)).tasks_completed < until:
        if now.status.value != "running":
            break
        await asyncio.sleep(5)
    took = time.monotonic() - began
    print(
        f"{tasks}-task goal  {now.tasks_completed} completed in {took:.1f} s "
        f"({now.tasks_completed / took:.1f} tasks/s), started by reference"
    )
    await _audit(client, [goal_id])
    page = await handle.query("tasks", result_type=TaskPage)
    for workflow_id in page.partitions:
        with contextlib.suppress(RPCError):  # not started, or already ended
            await client.get_workflow_handle(workflow_id).terminate("benchmark over")
    await handle.terminate("benchmark over")


def _spec(tasks: int) -> dict[str, Any]:
    return {
        "title": "Benchmark goal",
        "workspace": "bench",
        "max_running_tasks": WINDOW,
        "tasks": [{"id": f"t{i}", "title": f"Task {i}", "skill": "work"} for i in range(tasks)],
    }


def _largest_payload(events: Any, where: str) -> tuple[int, str]:
    """The largest event's size and what it was: its type, in which workflow."""
    largest = (0, "")
    for event in events:
        size = event.ByteSize()
        if size > largest[0]:
            kind = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_").lower()
            largest = (size, f"{kind} in {where}")
    return largest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--goals", type=int, default=100)
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--big", type=int, default=10_000, help="tasks of the big goal; 0 skips")
    parser.add_argument("--audit", type=int, default=10, help="goals whose histories are read")
    parser.add_argument(
        "--huge", type=int, default=0, help="also start a goal of this many tasks by reference"
    )
    parser.add_argument(
        "--until", type=int, default=10_000, help="completions of the huge goal before its audit"
    )
    parser.add_argument(
        "--learning",
        type=int,
        default=200,
        help="tasks per agent selection in the agent-choice comparison; 0 skips it",
    )
    parser.add_argument(
        "--learning-only", action="store_true", help="run only the agent-choice comparison"
    )
    parser.add_argument(
        "--api-goals",
        type=int,
        default=100,
        help="live goals of 100 tasks while the goal page's API answers are timed; 0 skips",
    )
    parser.add_argument("--api-only", action="store_true", help="run only the API timing")
    parser.add_argument(
        "--chain",
        type=int,
        default=100,
        help="tasks of the chain run by agents on the signal path and over HTTP; 0 skips",
    )
    parser.add_argument(
        "--agents-only",
        action="store_true",
        help="run only the chain: bare Temporal, the signal path, the HTTP agent path",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="goalkeeper-bench-") as folder:
        asyncio.run(bench(args, Path(folder)))


if __name__ == "__main__":
    main()
