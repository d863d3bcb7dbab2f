"""Throughput, latency and memory of Goalkeeper on the embedded stack; prints its figures.

    python bench/run.py [--goals 20] [--tasks 10] [--agents 8]

Starts its own Temporal dev server and PostgreSQL (free ports, a temporary folder), one
worker and simulated agents in this process, runs the goals concurrently to the end,
and prints goals/s, tasks/s, goal latency percentiles and the process's peak memory.
Figures depend on the machine; compare runs on the same one.
"""

import argparse
import asyncio
import resource
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from activities.database import apply_schema, create_pool
from goalkeeper import registry
from goalkeeper.agent_runner import AgentRunner, SimulatedWork
from goalkeeper.stack import EmbeddedPostgres, TemporalDevServer, free_port
from worker import build_worker
from workflows.goal import GoalWorkflow


async def bench(goals: int, tasks: int, agents: int, folder: Path) -> None:
    server = TemporalDevServer(folder / "temporal.db", port=free_port(), ui_port=None)
    server.start()
    postgres = EmbeddedPostgres(folder / "postgres")
    try:
        pool = await create_pool(postgres.start(), max_size=20)
        await apply_schema(pool)
        client = await Client.connect(server.address, data_converter=pydantic_data_converter)
        agent_ids = [f"bench-{n}" for n in range(agents)]
        for agent_id in agent_ids:
            await registry.register_agent(pool, agent_id, "bench", ["work"], capacity=4)
        runner = AgentRunner(client, pool, agent_ids, SimulatedWork(delay=(0, 0)), "bench")
        stop = asyncio.Event()
        async with build_worker(client, pool, "bench"):
            serving = asyncio.create_task(runner.run(stop))
            began = time.monotonic()
            latencies = await asyncio.gather(*(_goal(client, tasks) for _ in range(goals)))
            elapsed = time.monotonic() - began
            stop.set()
            await serving
        await pool.close()
    finally:
        postgres.stop()
        server.stop()
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cuts = statistics.quantiles(latencies, n=20) if len(latencies) > 1 else latencies * 19
    print(f"goals {goals} x tasks {tasks}, {agents} agents (capacity 4), one worker")
    print(f"elapsed            {elapsed:8.2f} s")
    print(f"goals per second   {goals / elapsed:8.2f}")
    print(f"tasks per second   {goals * tasks / elapsed:8.2f}")
    print(f"goal latency p50   {statistics.median(latencies):8.2f} s")
    print(f"goal latency p95   {cuts[18]:8.2f} s")
    print(f"peak memory        {peak_mib:8.1f} MiB (this process: worker, agents, client)")


async def _goal(client: Client, tasks: int) -> float:
    spec = {
        "title": "Benchmark goal",
        "workspace": "bench",
        "tasks": [{"id": f"t{i}", "title": f"Task {i}", "skill": "work"} for i in range(tasks)],
    }
    began = time.monotonic()
    await client.execute_workflow(
        GoalWorkflow.run, spec, id=f"bench-{uuid.uuid4().hex[:10]}", task_queue="bench"
    )
    return time.monotonic() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--goals", type=int, default=20)
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--agents", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="goalkeeper-bench-") as folder:
        asyncio.run(bench(args.goals, args.tasks, args.agents, Path(folder)))


if __name__ == "__main__":
    main()
