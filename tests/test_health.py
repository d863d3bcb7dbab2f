"""The health check finds what was planted behind the engine's back, repairs it or alerts."""

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client
from temporalio.service import RPCError

from goalkeeper.records import HealthCheck, HealthReport
from goalkeeper.statuses import TaskStatus
from interfaces.health import install_schedule
from store.database import apply_schema, create_pool
from tests.helpers import eventually, goal_spec, one_row, start_goal, task_view, wait_task
from worker import build_worker
from workflows.health import HealthCheckWorkflow


@pytest.fixture
async def own_pool(pool: asyncpg.Pool, database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A database of this test's own: the check looks at every goal, so none of the others'."""
    name = f"health_{uuid.uuid4().hex[:8]}"
    await pool.execute(f"CREATE DATABASE {name}")
    scoped = await create_pool(database_url.replace("/postgres?", f"/{name}?"), max_size=5)
    await apply_schema(scoped)
    yield scoped
    await scoped.close()


async def _check(client: Client, queue: str, repair: bool = True) -> HealthReport:
    return await client.execute_workflow(
        HealthCheckWorkflow.run,
        HealthCheck(repair=repair),
        id=f"health-{uuid.uuid4().hex[:8]}",
        task_queue=queue,
    )


async def test_planted_inconsistencies_are_found_repaired_and_alerted(
    client: Client, own_pool: asyncpg.Pool, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, posted = webhook
    queue = f"health-{uuid.uuid4().hex[:8]}"
    pool = own_pool
    async with build_worker(client, pool, queue, alert_webhook=url):
        # An agent stuck busy with nothing to do.
        await pool.execute(
            "INSERT INTO agents (agent_id, workspace, skills, status, active_assignments, capacity)"
            " VALUES ('stuck', 'w', '{data}', 'busy', 1, 2)"
        )
        # A task row edited behind the engine's back.
        edited = await start_goal(client, goal_spec(1, "w-edit"), queue)
        await wait_task(client, edited.id, "t1", TaskStatus.ASSIGNED)
        await pool.execute(
            "UPDATE tasks SET status = 'completed' WHERE goal_id = $1 AND task_id = 't1'", edited.id
        )
        # A goal row with no tasks.
        await pool.execute(
            "INSERT INTO goals (goal_id, first_run_id, title, workspace, spec) "
            "VALUES ('hollow', 'none', 'Hollow', 'w', '{}')"
        )
        # A goal whose workflow was terminated without recording an outcome.
        killed = await start_goal(client, goal_spec(1, "w-killed"), queue)
        await wait_task(client, killed.id, "t1", TaskStatus.ASSIGNED)
        await killed.terminate("planted by a test")
        # A task whose workflow has not acted on its deadline (its clock has not run out yet).
        late = await start_goal(client, goal_spec(1, "w-late"), queue)
        first = await wait_task(client, late.id, "t1", TaskStatus.ASSIGNED)
        await pool.execute(
            "UPDATE assignments SET created_at = now() - interval '2 hours' "
            "WHERE assignment_id = $1",
            first.assignment_id,
        )

        looked = await _check(client, queue, repair=False)
        planted = {
            ("agent_load_wrong", "agent:stuck"),
            ("read_model_disagrees", f"task:{edited.id}/t1"),
            ("goal_without_tasks", "goal:hollow"),
            ("workflow_ended_without_outcome", "goal:hollow"),
            ("workflow_ended_without_outcome", f"goal:{killed.id}"),
            ("task_past_deadline", f"task:{late.id}/t1"),
        }
        assert {(f.kind, f.subject) for f in looked.findings} == planted
        assert not any(f.repaired for f in looked.findings)
        assert {(a["kind"], a["subject"]) for p in posted for a in p["alerts"]} == planted

        repaired = await _check(client, queue)
        found = {(f.kind, f.subject): f for f in repaired.findings}
        assert set(found) == planted
        assert not found[("goal_without_tasks", "goal:hollow")].repaired  # nothing safe to do
        assert all(f.repaired for key, f in found.items() if key[0] != "goal_without_tasks")
        seen = await pool.fetch("SELECT kind, subject, seen FROM alerts WHERE resolved_at IS NULL")
        assert {(a["kind"], a["subject"]): a["seen"] for a in seen} == dict.fromkeys(planted, 2)
        assert len(posted) == 1  # a problem still open is not posted again

        agent = await one_row(pool, "SELECT * FROM agents WHERE agent_id = 'stuck'")
        assert (agent["status"], agent["active_assignments"]) == ("available", 0)
        row = await one_row(
            pool, "SELECT status FROM tasks WHERE goal_id = $1 AND task_id = 't1'", edited.id
        )
        assert row["status"] == "assigned"
        goal = await one_row(pool, "SELECT status, error FROM goals WHERE goal_id = $1", killed.id)
        assert goal["status"] == "failed" and "terminated" in goal["error"]
        second = await wait_task(client, late.id, "t1", TaskStatus.ASSIGNED, attempt=2)
        assert second.agent_id != first.agent_id
        assert "past its report deadline" in " ".join(second.history)

        clean = await _check(client, queue)
        assert clean.findings == []
        assert await pool.fetchval("SELECT count(*) FROM alerts WHERE resolved_at IS NULL") == 0

        view = await task_view(client, edited.id, "t1")
        assert view.status is TaskStatus.ASSIGNED


async def test_the_worker_installs_the_schedule_and_it_runs(
    client: Client, own_pool: asyncpg.Pool
) -> None:
    queue = f"health-{uuid.uuid4().hex[:8]}"
    async with build_worker(client, own_pool, queue):
        with contextlib.suppress(RPCError):
            await client.get_schedule_handle("goalkeeper-health").delete()
        assert await install_schedule(client, queue, timedelta(seconds=1)) in ("created", "updated")
        assert await install_schedule(client, queue, timedelta(seconds=1)) == "updated"

        async def ran() -> int:
            return int(await own_pool.fetchval("SELECT count(*) FROM health_checks"))

        assert await eventually(ran, what="a scheduled health check") >= 1
        await client.get_schedule_handle("goalkeeper-health").delete()
