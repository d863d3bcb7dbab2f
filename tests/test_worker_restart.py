"""The worker killed with SIGKILL at random moments: every goal completes, nothing twice."""

import asyncio
import random
import signal
import uuid
from pathlib import Path

import asyncpg
from temporalio.client import Client

from interfaces.stack import TemporalDevServer
from tests.faults import assert_nothing_lost_or_duplicated, through_disruption
from tests.helpers import start_goal, start_worker_process


async def test_goals_complete_although_the_worker_is_killed_again_and_again(
    client: Client,
    pool: asyncpg.Pool,
    temporal_server: TemporalDevServer,
    database_url: str,
    workspace: str,
    tmp_path: Path,
) -> None:
    queue = f"restart-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "worker.log"
    worker = await start_worker_process(temporal_server, database_url, queue, log)
    handles = []
    for n in range(3):
        spec = {
            "title": f"Survive crashes {n}",
            "workspace": workspace,
            "approvers": ["ops-lead"],
            "max_running_tasks": 2,
            "tasks": [
                {"id": f"t{i}", "title": f"T{i}", "skill": "data", "requires_approval": i % 3 == 0}
                for i in range(6)
            ],
        }
        handles.append(await start_goal(client, spec, queue))
    chance = random.Random(7)  # random moments, the same ones every run

    async def kill_again_and_again() -> None:
        nonlocal worker
        for _ in range(3):
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            worker = await start_worker_process(temporal_server, database_url, queue, log)
            await asyncio.sleep(chance.uniform(0.5, 2.5))

    try:
        reports = await through_disruption(
            client, pool, handles, kill_again_and_again, approver="ops-lead"
        )
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    await assert_nothing_lost_or_duplicated(pool, reports)
    busy = await pool.fetchval(
        "SELECT coalesce(sum(active_assignments), 0) FROM agents WHERE workspace = $1", workspace
    )
    assert busy == 0
