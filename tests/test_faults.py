"""Proof under faults: Temporal, PostgreSQL and agents stopped mid-run; nothing is lost."""

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from goalkeeper.statuses import TaskStatus
from interfaces.stack import EmbeddedPostgres, TemporalDevServer, free_port
from store.database import apply_schema, create_pool
from tests.faults import assert_nothing_lost_or_duplicated, through_disruption
from tests.helpers import (
    PATIENCE,
    ROOT,
    eventually,
    goal_spec,
    start_goal,
    task_view,
    wait_task,
)
from worker import build_worker


def _specs(workspace: str, goals: int = 3, tasks: int = 5) -> list[dict[str, object]]:
    return [
        {**goal_spec(tasks, workspace), "title": f"Fault goal {n}", "max_running_tasks": 2}
        for n in range(goals)
    ]


async def test_goals_complete_when_the_temporal_server_restarts(
    pool: asyncpg.Pool, workspace: str, tmp_path: Path
) -> None:
    server = TemporalDevServer(tmp_path / "temporal.db", port=free_port(), ui_port=None)
    server.start()
    try:
        client = await Client.connect(server.address, data_converter=pydantic_data_converter)
        queue = f"restart-{uuid.uuid4().hex[:8]}"

        async def restart_temporal() -> None:
            server.stop()  # the same database file keeps every workflow
            await asyncio.sleep(2)
            server.start()

        async with build_worker(client, pool, queue):
            handles = [await start_goal(client, spec, queue) for spec in _specs(workspace)]
            reports = await through_disruption(client, pool, handles, restart_temporal)
        await assert_nothing_lost_or_duplicated(pool, reports)
    finally:
        server.stop()


@pytest.fixture
async def own_postgres(tmp_path: Path) -> AsyncIterator[tuple[EmbeddedPostgres, asyncpg.Pool]]:
    """A PostgreSQL of this test's own, so stopping it disturbs no other test."""
    postgres = EmbeddedPostgres(tmp_path / "postgres")
    pool = await create_pool(postgres.start(), max_size=10)
    await apply_schema(pool)
    yield postgres, pool
    await pool.close()
    postgres.stop()


async def test_goals_complete_when_postgres_restarts(
    client: Client, own_postgres: tuple[EmbeddedPostgres, asyncpg.Pool], workspace: str
) -> None:
    postgres, pool = own_postgres
    queue = f"pg-{uuid.uuid4().hex[:8]}"

    async def restart_postgres() -> None:
        postgres.stop()  # activities fail and retry meanwhile
        await asyncio.sleep(3)
        postgres.start()

    async with build_worker(client, pool, queue):
        handles = [await start_goal(client, spec, queue) for spec in _specs(workspace)]
        reports = await through_disruption(client, pool, handles, restart_postgres)
    await assert_nothing_lost_or_duplicated(pool, reports)
    for report in reports:  # the read model agrees with the workflows afterwards
        rows = await pool.fetch(
            "SELECT task_id, status::text, agent_id, attempts FROM tasks WHERE goal_id = $1",
            report.goal_id,
        )
        assert {(r["task_id"], r["status"], r["agent_id"], r["attempts"]) for r in rows} == {
            (t.task_id, t.outcome.value, t.agent_id, t.attempts) for t in report.tasks
        }


def _agent_process(
    env: dict[str, str], prefix: str, workspace: str, delay: str, log: Path
) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "agent.py"),
                "--count",
                "1",
                "--prefix",
                prefix,
                "--skills",
                "writing",
                "--workspace",
                workspace,
                "--success-rate",
                "1",
                "--delay",
                delay,
            ],
            env=env,
            stdout=out,
            stderr=out,
        )


async def test_a_killed_agent_loses_its_task_to_another_within_the_heartbeat_timeout(
    client: Client,
    task_queue: str,
    pool: asyncpg.Pool,
    temporal_server: TemporalDevServer,
    database_url: str,
    workspace: str,
    tmp_path: Path,
) -> None:
    env = {**os.environ, "TEMPORAL_ADDRESS": temporal_server.address, "DATABASE_URL": database_url}
    slow = _agent_process(env, f"{workspace}-slow", workspace, "600", tmp_path / "slow.log")

    async def registered() -> bool:
        return bool(
            await pool.fetchval("SELECT count(*) FROM agents WHERE workspace = $1", workspace)
        )

    try:
        await eventually(registered, what="the agent process to register")
        spec = goal_spec(1, workspace, heartbeat_timeout_seconds=3, report_deadline_seconds=3600)
        handle = await start_goal(client, spec, task_queue)
        first = await wait_task(client, handle.id, "t1", TaskStatus.ASSIGNED)
        assert first.agent_id == f"{workspace}-slow-1"

        async def heartbeating() -> bool:
            return (await task_view(client, handle.id, "t1")).last_heartbeat_at is not None

        await eventually(heartbeating, what="the agent's first heartbeat")
        slow.send_signal(signal.SIGKILL)
        slow.wait()
        fast = _agent_process(env, f"{workspace}-fast", workspace, "0.1", tmp_path / "fast.log")
        try:
            report = await asyncio.wait_for(handle.result(), PATIENCE)
        finally:
            fast.send_signal(signal.SIGTERM)
            fast.wait(30)
    finally:
        if slow.poll() is None:
            slow.kill()
    task = report.tasks[0]
    assert (task.outcome, task.attempts, task.agent_id) == (
        TaskStatus.COMPLETED,
        2,
        f"{workspace}-fast-1",
    )
    view = await task_view(client, handle.id, "t1")
    assert "went silent (no heartbeat for 3s)" in view.history[0]
    agent = await pool.fetchrow("SELECT status FROM agents WHERE agent_id = $1", first.agent_id)
    assert agent is not None and agent["status"] == "unresponsive"
    lapses = await pool.fetch(
        "SELECT message FROM events WHERE goal_id = $1 AND kind = 'agent_unresponsive'", handle.id
    )
    assert len(lapses) == 1 and first.agent_id in lapses[0]["message"]
